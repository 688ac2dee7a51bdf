"""Tests of the test rig itself: tiny seeded models and the A1111 contract stub."""

from __future__ import annotations

import json
import socket
import sys
import textwrap

import pytest
import torch

from tests.rig import a1111 as rig_a1111
from tests.rig import fixtures, hf, ldm, tokenizer


def _constant_parameters(module: torch.nn.Module) -> list[str]:
    return [
        name
        for name, p in module.named_parameters()
        if p.numel() > 1 and bool((p.reshape(-1) == p.reshape(-1)[0]).all())
    ]


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- ldm UNet -------------------------------------------------------------------------------------


def test_ldm_kwargs_are_the_fixture_constructor():
    path = fixtures.require_fixture("animatediff/tiny/inject/inject.json")
    spec = json.loads(path.read_text())["unet_constructor"]
    assert spec["class"] == "ldm.modules.diffusionmodules.openaimodel.UNetModel"
    assert spec["kwargs"] == ldm.LDM_TINY_KWARGS


def test_ldm_unet_is_seeded_and_leaves_global_rng_alone(ldm_unet):
    state = torch.get_rng_state()
    again = ldm.build_ldm_unet(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same_state(ldm_unet, again)
    assert not _same_state(ldm_unet, ldm.build_ldm_unet(seed=1))


def test_ldm_unet_has_no_trivial_layers(ldm_unet):
    assert _constant_parameters(ldm_unet) == []
    plain = ldm.build_ldm_unet(perturb=False)
    assert "out.2.weight" in _constant_parameters(plain)  # zero_module at initialisation
    assert [type(m).__name__ for m in ldm_unet.input_blocks[1]] == ["ResBlock", "SpatialTransformer"]
    assert len(ldm_unet.input_blocks) == 12 and len(ldm_unet.output_blocks) == 12


@torch.no_grad()
def test_ldm_unet_output_is_finite_and_input_dependent(ldm_unet):
    x, t, c = ldm.ldm_inputs(batch=2, size=16)
    y = ldm_unet(x, timesteps=t, context=c)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert y.std() > 0.05
    assert not torch.allclose(y[0], y[1])
    assert not torch.allclose(y, ldm_unet(x + 0.1 * torch.randn_like(x), timesteps=t, context=c))
    assert not torch.allclose(y, ldm_unet(x, timesteps=t, context=c.flip(-1)))
    assert not torch.allclose(y, ldm_unet(x, timesteps=t * 0.5, context=c))
    assert torch.equal(y, ldm_unet(x, timesteps=t, context=c))


@torch.no_grad()
def test_fixture_unet_reproduces_expected_plain_output():
    unet = ldm.load_fixture_ldm_unet()
    io = ldm.load_fixture_inject_io()
    y = unet(io["x"], timesteps=io["timesteps"], context=io["context"])
    torch.testing.assert_close(y, io["expected_plain_unet"], atol=2e-4, rtol=1e-4)


def test_require_fixture_skips_with_reason():
    with pytest.raises(pytest.skip.Exception, match="shared fixture not found"):
        fixtures.require_fixture("no/such/file.safetensors")


# --- diffusers / transformers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def diffusers_unet():
    return hf.build_diffusers_unet(seed=0)


def test_diffusers_unet_layout_and_seeding(diffusers_unet):
    assert [type(b).__name__ for b in diffusers_unet.down_blocks] == [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ]
    assert type(diffusers_unet.mid_block).__name__ == "UNetMidBlock2DCrossAttn"
    assert [type(b).__name__ for b in diffusers_unet.up_blocks] == [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ]
    assert _constant_parameters(diffusers_unet) == []
    assert _same_state(diffusers_unet, hf.build_diffusers_unet(seed=0))
    assert not _same_state(diffusers_unet, hf.build_diffusers_unet(seed=1))


@torch.no_grad()
def test_diffusers_unet_output_is_finite_and_input_dependent(diffusers_unet):
    x, t, c = ldm.ldm_inputs(batch=2, size=16)
    y = diffusers_unet(x, t, encoder_hidden_states=c).sample
    assert y.shape == x.shape and torch.isfinite(y).all() and y.std() > 0.05
    assert not torch.allclose(y, diffusers_unet(x, t, encoder_hidden_states=c.flip(-1)).sample)
    assert not torch.allclose(y, diffusers_unet(x, t * 0.5, encoder_hidden_states=c).sample)
    assert not torch.allclose(y, diffusers_unet(x.flip(-1), t, encoder_hidden_states=c).sample)


@torch.no_grad()
def test_vae_round_trip_shapes():
    vae = hf.build_vae(seed=0)
    assert _constant_parameters(vae) == []
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = vae.encode(image).latent_dist.mode()
    assert latents.shape == (1, 4, 8, 8) and torch.isfinite(latents).all()
    decoded = vae.decode(latents).sample
    assert decoded.shape == image.shape and torch.isfinite(decoded).all()
    assert not torch.allclose(decoded, vae.decode(latents.flip(-1)).sample)


def test_tokenizer_is_offline_and_clip_like(tmp_path, no_network):
    tok = tokenizer.build_tokenizer(tmp_path / "tok")
    assert {p.name for p in (tmp_path / "tok").iterdir()} >= {"vocab.json", "merges.txt"}
    ids = tok(
        ["a photo of a cat", "zebra!"], padding="max_length", max_length=tok.model_max_length, truncation=True
    ).input_ids
    assert tok.model_max_length == 77 and all(len(row) == 77 for row in ids)
    assert ids[0][0] == tok.bos_token_id and ids[0][6] == tok.eos_token_id  # 5 words, one token each
    assert tok.decode(ids[0], skip_special_tokens=True) == "a photo of a cat"
    assert tok.decode(ids[1], skip_special_tokens=True) == "zebra !"  # punctuation is its own word in CLIP
    assert len(tok) == len(tokenizer.clip_vocab()[0])


@torch.no_grad()
def test_text_encoder_depends_on_prompt(no_network):
    tok = tokenizer.build_tokenizer()
    encoder = hf.build_text_encoder(seed=0)
    assert _constant_parameters(encoder) == []
    ids = tok(["a red car", "a blue dog"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    hidden = encoder(ids).last_hidden_state
    assert hidden.shape == (2, 77, 32) and torch.isfinite(hidden).all()
    assert not torch.allclose(hidden[0], hidden[1])
    assert torch.equal(hidden, hf.build_text_encoder(seed=0)(ids).last_hidden_state)


def test_scheduler_has_sd15_schedule():
    ddim = hf.build_scheduler("ddim")
    assert type(ddim).__name__ == "DDIMScheduler" and ddim.config.beta_schedule == "scaled_linear"
    torch.testing.assert_close(ddim.alphas_cumprod, rig_a1111.sd15_alphas_cumprod())
    assert type(hf.build_scheduler("euler")).__name__ == "EulerDiscreteScheduler"
    with pytest.raises(ValueError, match="allowed: ddim, euler"):
        hf.build_scheduler("pndm")


def test_sd_pipeline_runs_offline_and_deterministically(no_network):
    pipe = hf.build_sd_pipeline(seed=0)

    def run(prompt):
        return pipe(
            prompt,
            height=64,
            width=64,
            num_inference_steps=2,
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    first = run("a photo of a cat")
    assert first.shape == (1, 3, 64, 64) and torch.isfinite(first).all()
    assert torch.equal(first, run("a photo of a cat"))
    assert not torch.allclose(first, run("a red car at night"))


# --- A1111 contract stub --------------------------------------------------------------------------


class Recorder:
    """Makes Script subclasses whose every hook appends (hook name, script args) to ``calls``."""

    def __init__(self):
        self.calls: list[tuple] = []

    def script_class(self, title, visibility):
        from modules import scripts

        calls = self.calls

        def hook(name):
            def method(self, p, *args, **kwargs):
                calls.append((name, args, tuple(sorted(kwargs))))

            return method

        body = {
            name: hook(name)
            for name in (
                "setup",
                "before_process",
                "process",
                "before_process_batch",
                "after_extra_networks_activate",
                "process_batch",
                "process_before_every_sampling",
                "post_sample",
                "postprocess_batch",
                "postprocess_batch_list",
                "postprocess_image",
                "postprocess_maskoverlay",
                "postprocess_image_after_composite",
                "postprocess",
                "before_hr",
            )
        }
        body["title"] = lambda self: title
        body["show"] = lambda self, is_img2img: visibility
        return type(title.replace(" ", ""), (scripts.Script,), body)


def _strip_args(calls, args):
    """hook names, checking every pre-/post-processing object came first and the args are ``args``"""
    names = []
    for name, received, _ in calls:
        if name in (
            "postprocess_batch_list",
            "post_sample",
            "postprocess_image",
            "postprocess_maskoverlay",
            "postprocess_image_after_composite",
            "postprocess",
        ):
            received = received[1:]  # the pp / ps / processed object comes before the script args
        assert received == args, name
        names.append(name)
    return names


def test_process_images_calls_hooks_in_a1111_order(a1111):
    from modules import scripts

    rec = Recorder()
    script = rec.script_class("Recorder", scripts.AlwaysVisible)()
    runner, args = rig_a1111.make_runner([script], args={script: (True, 7)})
    assert args == (0, True, 7)
    p, processed = rig_a1111.run_txt2img(
        runner, args, prompt="a cat", steps=2, width=64, height=64, batch_size=2, n_iter=2, seed=11
    )

    per_image = ["postprocess_image", "postprocess_maskoverlay", "postprocess_image_after_composite"]
    per_batch = [
        "before_process_batch",
        "after_extra_networks_activate",
        "process_batch",
        "process_before_every_sampling",
        "post_sample",
        "postprocess_batch",
        "postprocess_batch_list",
        *per_image,
        *per_image,
    ]
    assert _strip_args(rec.calls, (True, 7)) == [
        "setup",
        "before_process",
        "process",
        *per_batch,
        *per_batch,
        "postprocess",
    ]
    kwargs = {name: keys for name, _, keys in rec.calls}
    assert kwargs["before_process_batch"] == ("batch_number", "prompts", "seeds", "subseeds")
    assert kwargs["process_before_every_sampling"] == ("c", "noise", "uc", "x")
    assert kwargs["postprocess_batch"] == ("batch_number", "images")
    assert p.all_seeds == [11, 12, 13, 14] and processed.all_seeds == [11, 12, 13, 14]
    assert len(processed.images) == 4 and processed.images[0].size == (64, 64)
    assert a1111.shared.state.job_no == 2 and a1111.shared.state.job_count == 0


def test_selected_script_runs_instead_of_process_images(a1111):
    from modules import processing, scripts

    rec = Recorder()
    always = rec.script_class("Always", scripts.AlwaysVisible)()

    class Chosen(scripts.Script):
        def title(self):
            return "Chosen"

        def run(self, p, *args):
            rec.calls.append(("run", args, ()))
            return processing.process_images(p)

    chosen = Chosen()
    runner, args = rig_a1111.make_runner([always, chosen], args={always: (1,), chosen: ("x", "y")}, selected=chosen)
    assert args == (1, 1, "x", "y")
    rig_a1111.run_txt2img(runner, args, prompt="a", steps=1, width=64, height=64)
    names = [name for name, _, _ in rec.calls]
    assert names[:2] == ["setup", "run"] and names[2] == "before_process" and names[-1] == "postprocess"
    assert rec.calls[1][1] == ("x", "y")


def test_hook_errors_are_swallowed_but_a_failed_generation_skips_postprocess(a1111):
    from modules import errors, scripts

    rec = Recorder()
    script = rec.script_class("Recorder", scripts.AlwaysVisible)()

    class Broken(scripts.Script):
        def title(self):
            return "Broken"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def process(self, p, *args):
            raise ValueError("bad argument")

    runner, args = rig_a1111.make_runner([script, Broken()])
    rig_a1111.run_txt2img(runner, args, prompt="a", steps=1, width=64, height=64)
    assert errors.exception_records[-1]["exception"] == "bad argument"
    assert rec.calls[-1][0] == "postprocess"

    rec.calls.clear()

    def fail(module, inputs):
        raise RuntimeError("unet exploded")

    a1111.shared.sd_model.model.diffusion_model.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="unet exploded"):
        rig_a1111.run_txt2img(runner, args, prompt="a", steps=1, width=64, height=64)
    names = [name for name, _, _ in rec.calls]
    assert "before_process" in names and "postprocess" not in names
    assert a1111.shared.state.job_count == 0 and not a1111.shared.state.interrupted


def test_interrupt_stops_sampling_and_later_batches(a1111):
    from modules import script_callbacks, scripts, shared

    steps_seen = []

    def on_denoiser(params):
        steps_seen.append(params.total_sampling_steps)
        shared.state.interrupt()

    script_callbacks.on_cfg_denoiser(on_denoiser)
    rec = Recorder()
    script = rec.script_class("Recorder", scripts.AlwaysVisible)()
    runner, args = rig_a1111.make_runner([script])
    _, processed = rig_a1111.run_txt2img(runner, args, prompt="a", steps=5, n_iter=3, width=64, height=64)
    assert steps_seen == [5]  # the next denoiser call raised InterruptedException
    assert len(processed.images) == 1  # batch 0 finished with its last latent, batches 1-2 never started
    assert [n for n, _, _ in rec.calls].count("process_batch") == 1 and rec.calls[-1][0] == "postprocess"
    assert not shared.state.interrupted  # reset when the job ends


def test_cfg_denoiser_sees_cond_then_uncond_rows(a1111):
    from modules import script_callbacks

    seen = {}

    def on_denoiser(params):
        seen.setdefault("x", params.x.shape)
        seen.setdefault("cond", params.text_cond.clone())
        seen.setdefault("uncond", params.text_uncond.clone())

    script_callbacks.on_cfg_denoiser(on_denoiser)
    runner, args = rig_a1111.make_runner([])
    rig_a1111.run_txt2img(runner, args, prompt="cat", negative_prompt="dog", steps=1, batch_size=3, width=64, height=64)
    model = a1111.shared.sd_model
    assert seen["x"] == (6, 4, 8, 8)
    torch.testing.assert_close(seen["cond"], model.get_learned_conditioning(["cat"] * 3))
    torch.testing.assert_close(seen["uncond"], model.get_learned_conditioning(["dog"] * 3))


def test_img2img_takes_batch_size_from_init_images(a1111):
    from modules import shared
    from PIL import Image

    frames = [Image.new("RGB", (64, 64), (40 * i, 90, 200)) for i in range(3)]
    runner, args = rig_a1111.make_runner([], is_img2img=True)
    p, processed = rig_a1111.run_img2img(
        runner,
        args,
        init_images=frames,
        prompt="a",
        batch_size=8,
        steps=10,
        denoising_strength=0.5,
        width=64,
        height=64,
    )
    assert p.batch_size == 3 and len(processed.images) == 3
    assert shared.state.sampling_steps == 6  # int(0.5 * 10) + 1, as A1111's img2img schedule
    assert "Denoising strength: 0.5" in processed.info


def test_override_settings_are_restored(a1111):
    from modules import shared

    runner, args = rig_a1111.make_runner([])
    _, processed = rig_a1111.run_txt2img(
        runner, args, prompt="a", steps=1, width=64, height=64, override_settings={"CLIP_stop_at_last_layers": 2}
    )
    assert "Clip skip: 2" in processed.info
    assert shared.opts.CLIP_stop_at_last_layers == 1


def test_save_image_writes_infotext_and_fires_callbacks(a1111, tmp_path):
    from modules import images, script_callbacks, shared
    from PIL import Image

    def rename(params):
        params.filename = params.filename.replace(".png", "-renamed.png")

    script_callbacks.on_before_image_saved(rename)
    shared.opts.save_txt = True
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    fullfn, txt = images.save_image(
        image, str(tmp_path), "", seed=42, prompt="a cat", extension="png", info="a cat\nSteps: 2, Seed: 42"
    )
    assert fullfn.endswith("-42-renamed.png") and txt.endswith("-42-renamed.txt")
    assert Image.open(fullfn).info["parameters"] == "a cat\nSteps: 2, Seed: 42"
    assert list(tmp_path.rglob("*.tmp")) == []
    second, _ = images.save_image(image, str(tmp_path), "", seed=43, prompt="a cat", info="x")
    assert "00001-43" in second


def test_callbacks_fire_in_order_and_survive_errors(a1111):
    from modules import errors, script_callbacks

    seen = []
    script_callbacks.on_script_unloaded(lambda: seen.append("first"))
    script_callbacks.on_script_unloaded(lambda: 1 / 0)
    script_callbacks.on_script_unloaded(lambda: seen.append("last"))
    script_callbacks.on_model_loaded(lambda model: seen.append(type(model).__name__))
    script_callbacks.script_unloaded_callback()
    script_callbacks.model_loaded_callback(a1111.shared.sd_model)
    assert seen == ["last", "first", "TinySdModel"]
    assert "division by zero" in errors.exception_records[-1]["exception"]
    names = [c.name for c in script_callbacks.callback_map["callbacks_script_unloaded"]]
    assert names[0].startswith("base/test_rig.py/script_unloaded") and len(set(names)) == 3


def test_load_scripts_runs_extension_files_with_basedir(a1111, tmp_path):
    from modules import scripts

    ext = tmp_path / "ext"
    (ext / "scripts").mkdir(parents=True)
    (ext / "scripts" / "demo_script.py").write_text(
        textwrap.dedent("""
        from modules import scripts
        LOADED_FROM = scripts.basedir()

        class Demo(scripts.Script):
            def title(self):
                return "Demo"

            def show(self, is_img2img):
                return scripts.AlwaysVisible if is_img2img else False
    """)
    )
    rig_a1111.install_extension(ext, "demo")
    path_before = list(sys.path)
    scripts.load_scripts()
    assert sys.path == path_before
    (data,) = scripts.scripts_data
    assert data.module.LOADED_FROM == str(ext) and scripts.basedir() != str(ext)
    scripts.scripts_img2img.initialize_scripts(is_img2img=True)
    scripts.scripts_txt2img.initialize_scripts(is_img2img=False)
    assert [s.title() for s in scripts.scripts_img2img.alwayson_scripts] == ["Demo"]
    assert scripts.scripts_txt2img.scripts == []


def test_stub_names_match_a1111():
    from modules import infotext_utils, paths, processing, script_callbacks, scripts, shared, ui_components

    assert scripts.Script.postprocess_batch_list.__code__.co_varnames[:3] == ("self", "p", "pp")
    assert infotext_utils.PasteField("comp", "Label").label == "Label"
    assert infotext_utils.quote("a, b") == '"a, b"'
    parsed = infotext_utils.parse_generation_parameters("a cat\nNegative prompt: dog\nSteps: 3, Seed: 5, Size: 64x32")
    assert parsed["Prompt"] == "a cat" and parsed["Negative prompt"] == "dog" and parsed["Size-2"] == "32"
    assert processing.StableDiffusionProcessingTxt2Img(sd_model="ignored").sd_model is shared.sd_model
    assert callable(script_callbacks.on_ui_settings) and callable(script_callbacks.on_app_started)
    assert paths.models_path.endswith("models")
    with ui_components.InputAccordion(False, label="AnimateDiff", elem_id="ad") as acc:
        assert acc.value is False and acc.accordion_id == "ad"
