"""HTTP side: argument checks that answer 4xx before a job starts, and the /vidsd/v1 routes.

A1111 swallows exceptions raised inside script hooks, so a bad AnimateDiff argument sent to
``/sdapi/v1/txt2img`` or ``img2img`` is checked here, in a middleware, before the WebUI runs
anything: the answer is ``422`` with the field, the value and what is allowed.
"""

from __future__ import annotations

import json
from typing import Any

from lib_vidsd import __version__
from lib_vidsd.errors import ConfigError, IncompatibleModelError, VidsdError

from . import binding, models

GENERATION_ROUTES = ("/sdapi/v1/txt2img", "/sdapi/v1/img2img")
SCRIPT_NAME = "animatediff"


def _script_args(body: dict, title: str) -> list | None:
    """The ``alwayson_scripts`` arguments of the script ``title`` (A1111 matches titles without case)."""
    scripts = body.get("alwayson_scripts") or {}
    if not isinstance(scripts, dict):
        return None
    for name, entry in scripts.items():
        if str(name).lower() == title.lower() and isinstance(entry, dict):
            args = entry.get("args")
            return list(args) if isinstance(args, (list, tuple)) else None
    return None


def _config_answer(e: ConfigError) -> dict:
    return {
        "error": "ConfigError",
        "field": e.field,
        "value": _jsonable(e.value),
        "allowed": _jsonable(e.allowed),
        "detail": str(e),
    }


def check_request(body: Any, *, model_is_sdxl: bool | None) -> dict | None:
    """``None`` when the AnimateDiff and Steps animation arguments of a generation request are
    acceptable (or absent), else the 422 answer: ``{"error", "field", "value", "allowed", "detail"}``."""
    if not isinstance(body, dict):
        return None
    return (
        _check_animatediff(body, model_is_sdxl)
        or _check_steps(body, model_is_sdxl)
        or _check_multiframe(body)
        or _check_keyframes(body)
        or _check_stylize(body)
    )


def _check_keyframes(body: dict) -> dict | None:
    """``script_name: "Keyframe animation"`` with ``script_args: [{...}]`` (uploads as base64);
    an img2img request is one with ``init_images``."""
    if str(body.get("script_name") or "").lower() != binding.KEYFRAMES.key.lower():
        return None
    args = body.get("script_args") or []
    if not isinstance(args, list):
        return _config_answer(ConfigError("script_args", type(args).__name__, "a list: [{...}]"))
    try:
        from .keyframes_job import check, parse

        params, audio_path, video_path = parse(args, is_api=True)
        animatediff = _script_args(body, SCRIPT_NAME)
        if animatediff and (
            animatediff[0] is True or isinstance(animatediff[0], dict) and animatediff[0].get("enable")
        ):
            raise ConfigError("AnimateDiff", "enabled", "off while Keyframe animation renders its frames")
        check(params, audio_path, video_path, body, is_img2img=bool(body.get("init_images")))
    except ConfigError as e:
        return _config_answer(e)
    except VidsdError as e:
        return {"error": type(e).__name__, "field": "interp_model", "detail": str(e)}
    return None


def _check_stylize(body: dict) -> dict | None:
    """``script_name: "Video stylisation"`` with ``script_args: [{...}]`` (or the list form)."""
    if str(body.get("script_name") or "").lower() != binding.STYLIZE.key.lower():
        return None
    args = body.get("script_args") or []
    if not isinstance(args, list):
        return _config_answer(ConfigError("script_args", type(args).__name__, "a list: [{...}]"))
    try:
        from .stylize_job import check, parse

        params, video_path = parse(args, is_api=True)
        animatediff = _script_args(body, SCRIPT_NAME)
        if animatediff and (
            animatediff[0] is True or isinstance(animatediff[0], dict) and animatediff[0].get("enable")
        ):
            raise ConfigError("AnimateDiff", "enabled", "off while Video stylisation renders its frames")
        check(params, video_path, body)
    except ConfigError as e:
        return _config_answer(e)
    except VidsdError as e:
        return {"error": type(e).__name__, "field": "interp_model", "detail": str(e)}
    return None


def _check_multiframe(body: dict) -> dict | None:
    """``script_name: "Multi-frame rendering"`` with ``script_args: [{...}]`` (or the list form)."""
    if str(body.get("script_name") or "").lower() != binding.MULTIFRAME.key.lower():
        return None
    args = body.get("script_args") or []
    if not isinstance(args, list):
        return _config_answer(ConfigError("script_args", type(args).__name__, "a list: [{...}]"))
    try:
        from .multiframe_job import check, parse

        params, video_path = parse(args, is_api=True)  # the list form starts with the (empty) upload slot
        check(params, video_path, body)
    except ConfigError as e:
        return _config_answer(e)
    except VidsdError as e:
        return {"error": type(e).__name__, "field": "interp_model", "detail": str(e)}
    return None


def _check_steps(body: dict, model_is_sdxl: bool | None) -> dict | None:
    args = _script_args(body, binding.STEPS.key)
    if not args:
        return None
    try:
        params = binding.STEPS.parse_args(args)
        if params.enabled:
            from .steps_job import check_params

            steps = body.get("steps", 20)  # the API's default
            check_params(params, is_sdxl=bool(model_is_sdxl), steps=steps if isinstance(steps, int) else None)
    except ConfigError as e:
        return _config_answer(e)
    except VidsdError as e:  # e.g. interpolation weights that do not load
        return {"error": type(e).__name__, "field": "interp_model", "detail": str(e)}
    return None


def _check_animatediff(body: dict, model_is_sdxl: bool | None) -> dict | None:
    args = _script_args(body, SCRIPT_NAME)
    if not args:
        return None
    try:
        params = binding.parse_args(args)
        if not params.enable:
            return None
        from .job import check_interp

        check_interp(params)
        prompt = body.get("prompt")
        if isinstance(prompt, str):  # prompt travel keys must fall inside the clip
            from lib_vidsd.schedule.prompts import parse_prompt_travel

            parse_prompt_travel(prompt, params.video_length or params.batch_size)
        path = models.resolve(params.model)
        if params.motion_lora:
            models.resolve(params.motion_lora, field="motion_lora")
        if model_is_sdxl is not None:
            from lib_vidsd.motion import get_family, probe_family

            family = probe_family(path)
            if get_family(family).is_sdxl != model_is_sdxl:
                kind = "an SDXL" if model_is_sdxl else "an SD1.x"
                raise IncompatibleModelError(
                    f"{params.model} is a {family} motion module; the loaded checkpoint is {kind} model"
                )
    except ConfigError as e:
        return _config_answer(e)
    except IncompatibleModelError as e:
        return {
            "error": "IncompatibleModelError",
            "field": "model",
            "value": args[0].get("model") if isinstance(args[0], dict) else None,
            "allowed": "a motion module of the loaded checkpoint's family",
            "detail": str(e),
        }
    return None


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def motion_modules() -> list[dict]:
    from lib_vidsd.motion import probe_family

    out = []
    for name, path in models.list_models().items():
        try:
            family = probe_family(path)
        except Exception as e:  # a damaged file is listed with the reason, not hidden
            family = f"unreadable: {e}"
        out.append({"name": name, "family": family, "size": path.stat().st_size})
    return out


def mount(app) -> None:
    """Register the middleware and the routes on A1111's FastAPI app (``on_app_started``)."""
    from fastapi.responses import JSONResponse

    _add_routes(app, JSONResponse)

    async def vidsd_check_arguments(request, call_next):
        if request.method == "POST" and request.url.path in GENERATION_ROUTES:
            raw = await request.body()

            async def replay():  # the body was read here: hand it on to the route unchanged
                return {"type": "http.request", "body": raw, "more_body": False}

            request._receive = replay
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            answer = check_request(body, model_is_sdxl=_loaded_is_sdxl())
            if answer is not None:
                return JSONResponse(status_code=422, content=answer)
        return await call_next(request)

    # Starlette refuses new middleware once a request has built the stack, and a request can
    # arrive before app_started; dropping the built stack (as A1111's own setup does) lets it
    # be rebuilt, with this middleware, on the next request.
    from starlette.middleware.base import BaseHTTPMiddleware

    app.middleware_stack = None
    app.add_middleware(BaseHTTPMiddleware, dispatch=vidsd_check_arguments)


def _add_routes(app, JSONResponse) -> None:
    app.add_api_route("/vidsd/v1/version", lambda: {"version": __version__}, methods=["GET"])
    app.add_api_route("/vidsd/v1/schema", binding.schema, methods=["GET"])
    app.add_api_route("/vidsd/v1/schema/steps", binding.STEPS.schema, methods=["GET"])
    app.add_api_route("/vidsd/v1/schema/keyframes", binding.KEYFRAMES.schema, methods=["GET"])
    app.add_api_route("/vidsd/v1/schema/stylize", binding.STYLIZE.schema, methods=["GET"])
    app.add_api_route("/vidsd/v1/motion_modules", motion_modules, methods=["GET"])

    from . import interp_route

    async def interpolate_route(request):  # a plain Starlette route: it reads the raw body itself
        from starlette.concurrency import run_in_threadpool

        raw = await request.body()
        if len(raw) > interp_route.MAX_BYTES * 4 // 3 + 4096:
            return JSONResponse(status_code=413, content={"error": "TooLarge", "detail": "request body too large"})
        try:
            answer = await run_in_threadpool(interp_route.interpolate_request, json.loads(raw or b"{}"))
        except ValueError as e:  # ConfigError is a ValueError, and so is bad JSON
            status = 413 if isinstance(e, interp_route.TooLarge) else 422
            return JSONResponse(
                status_code=status,
                content={"error": type(e).__name__, "field": getattr(e, "field", "body"), "detail": str(e)},
            )
        except VidsdError as e:  # e.g. an undecodable video
            return JSONResponse(status_code=422, content={"error": type(e).__name__, "detail": str(e)})
        return JSONResponse(content=answer)

    app.add_route("/vidsd/v1/interpolate", interpolate_route, methods=["POST"])

    async def audio_keyframes_route(request):
        from starlette.concurrency import run_in_threadpool

        from lib_vidsd.config import MAX_UPLOAD_BYTES

        from .keyframes_job import audio_keyframes_request

        raw = await request.body()
        if len(raw) > MAX_UPLOAD_BYTES * 4 // 3 + 4096:
            return JSONResponse(status_code=413, content={"error": "TooLarge", "detail": "request body too large"})
        try:
            answer = await run_in_threadpool(audio_keyframes_request, json.loads(raw or b"{}"))
        except ValueError as e:  # ConfigError is a ValueError, and so is bad JSON
            content = {"error": type(e).__name__, "field": getattr(e, "field", "body"), "detail": str(e)}
            return JSONResponse(status_code=422, content=content)
        return JSONResponse(content=answer)

    app.add_route("/vidsd/v1/audio_keyframes", audio_keyframes_route, methods=["POST"])

    from . import deflicker_route

    deflicker_route.add_routes(app, JSONResponse)  # POST /vidsd/v1/deflicker, GET /vidsd/v1/schema/deflicker


def _loaded_is_sdxl() -> bool | None:
    from modules import shared

    model = getattr(shared, "sd_model", None)
    return None if model is None else bool(getattr(model, "is_sdxl", False))
