"""Command-line flags of the suite, added to A1111's parser before it parses ``sys.argv``."""


def preload(parser):
    parser.add_argument(
        "--vidsd-ffmpeg",
        type=str,
        default=None,
        help="vidsd: path of the ffmpeg binary to use (default: VIDSD_FFMPEG, then the imageio-ffmpeg one)",
    )
    parser.add_argument(
        "--vidsd-log-level",
        type=str.upper,
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="vidsd: how much the suite logs to the console (default: INFO)",
    )
