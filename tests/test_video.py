"""Video in (cliffhmr/inference/video.py): files written here with PyAV directly, at known times; folders of
numbered frames; damaged files. The whole video path through the CLI is further below."""

import json

import numpy as np
import pytest
from PIL import Image

from cliffhmr.errors import CliffError
from cliffhmr.inference.video import FrameRange, Reader, Writer, numbered_frames
from conftest import assert_one_line_error, astronaut_frame, blank_frame, run, write_video
from test_animation import read_bvh


def test_variable_frame_rate_times_are_kept(tmp_path):
    times = [0.0, 0.033, 0.1, 0.133, 0.3, 0.31, 0.5]
    reader = Reader(write_video(tmp_path / "vfr.mp4", times))
    assert (reader.info.width, reader.info.height, reader.info.frame_count) == (64, 48, 7)
    frames = list(reader.frames())
    assert [f.index for f in frames] == list(range(7))
    np.testing.assert_allclose([f.time for f in frames], times, atol=1e-6)
    brightness = [f.pixels.mean() for f in frames]
    np.testing.assert_allclose(brightness, 20 + 10 * np.arange(7), atol=3)  # decoded in order, right frames
    assert frames[0].pixels.shape == (48, 64, 3) and frames[0].pixels.dtype == np.uint8
    assert reader.truncated is None


def test_every_start_and_end_choose_frames_by_time(tmp_path):
    reader = Reader(write_video(tmp_path / "clip.webm", [i / 10 for i in range(30)], codec="libvpx-vp9"))
    chosen = [f.index for f in reader.frames(FrameRange(every=3, start=0.5, end=2.05))]
    assert chosen == [5, 8, 11, 14, 17, 20]  # 0.5 s <= time < 2.05 s, then every third, numbered as in the file
    assert [f.index for f in reader.frames(FrameRange(start=2.75))] == [28, 29]
    for bad in (dict(every=0), dict(every=1.5), dict(start=-1), dict(start=2, end=1), dict(end=float("nan"))):
        with pytest.raises(CliffError):
            FrameRange(**bad)


def test_a_cut_off_file_gives_the_frames_before_the_cut_and_says_so(tmp_path):
    rng = np.random.default_rng(1)
    noise = [np.clip(rng.normal(40 + 5 * i, 25, (96, 128, 3)), 0, 255).astype(np.uint8) for i in range(24)]  # hard to compress
    whole = write_video(tmp_path / "whole.mp4", [i / 30 for i in range(24)], size=(128, 96), faststart=True, frames=noise)
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    reader = Reader(tmp_path / "cut.mp4")
    frames = list(reader.frames())
    assert 5 < len(frames) < 24
    # The frames that came are the file's first ones.
    np.testing.assert_allclose([f.pixels.mean() for f in frames], [n.mean() for n in noise[: len(frames)]], atol=3)
    assert reader.truncated and f"(frame {len(frames) - 1}) of the 0.80 s it declares" in reader.truncated
    # An MP4 cut before its index (written at the end) holds nothing to read: one clear line.
    plain = write_video(tmp_path / "plain.mp4", [i / 30 for i in range(60)]).read_bytes()
    (tmp_path / "cut2.mp4").write_bytes(plain[: len(plain) // 2])
    with pytest.raises(CliffError, match="cut2.mp4: not a readable video"):
        Reader(tmp_path / "cut2.mp4")


def test_not_videos_are_refused_in_one_line(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(CliffError, match="notes.mp4: not a readable video"):
        Reader(tmp_path / "notes.mp4")
    with pytest.raises(CliffError, match="no such video file"):
        Reader(tmp_path / "missing.mp4")
    with pytest.raises(CliffError, match="--fps"):
        Reader(tmp_path)  # a folder needs its frame rate


def test_a_folder_of_numbered_frames_is_read_in_number_order(tmp_path):
    for n in (10, 2, 1, 100):
        Image.fromarray(np.full((20, 30, 3), n, np.uint8)).save(tmp_path / f"frame_{n}.png")
    assert [p.stem for p in numbered_frames(tmp_path)] == ["frame_1", "frame_2", "frame_10", "frame_100"]
    reader = Reader(tmp_path, fps=25)
    frames = list(reader.frames(FrameRange(every=2)))
    assert [(f.index, f.time, int(f.pixels[0, 0, 0]), f.path.name) for f in frames] == [
        (0, 0.0, 1, "frame_1.png"), (2, 0.08, 10, "frame_10.png")]  # fmt: skip
    Image.fromarray(np.zeros((21, 30, 3), np.uint8)).save(tmp_path / "frame_200.png")
    with pytest.raises(CliffError, match="frame_200.png: 30x21 frame in a 30x20 sequence"):
        list(Reader(tmp_path, fps=25).frames())


def test_the_writer_keeps_times_and_pads_odd_sizes(tmp_path):
    times = [0.0, 0.04, 0.2, 0.21, 0.5]
    writer = Writer(tmp_path / "out.mp4", 65, 47, fps=25)
    for i, t in enumerate(times):
        writer.write(np.full((47, 65, 3), 40 * i, np.uint8), t)
    writer.close()
    frames = list(Reader(tmp_path / "out.mp4").frames())
    np.testing.assert_allclose([f.time for f in frames], times, atol=1e-4)
    assert frames[0].pixels.shape == (48, 66, 3)
    np.testing.assert_allclose([f.pixels[:47, :65].mean() for f in frames], 40 * np.arange(5), atol=2)


def test_garbage_inside_a_file_ends_it_with_one_line_after_the_good_frames(tmp_path):
    from cliffhmr.inference.video import VideoDamaged

    rng = np.random.default_rng(2)
    noise = [np.clip(rng.normal(40 + 5 * i, 25, (96, 128, 3)), 0, 255).astype(np.uint8) for i in range(24)]
    data = bytearray(write_video(tmp_path / "w.mp4", [i / 30 for i in range(24)], size=(128, 96), faststart=True, frames=noise).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = rng.integers(0, 255, 3000, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    got = []
    with pytest.raises(VideoDamaged, match=r"bad.mp4: damaged after frame \d+ \(0\.\d\d s\)") as e:
        for frame in Reader(tmp_path / "bad.mp4").frames():
            got.append(frame)
    assert 3 < len(got) < 24 and f"after frame {len(got) - 1} " in str(e.value)
    np.testing.assert_allclose([f.pixels.mean() for f in got], [n.mean() for n in noise[: len(got)]], atol=3)


def test_a_rotated_phone_video_comes_out_upright(tmp_path):
    """A stream stored landscape with a display matrix turning it 90 degrees counter-clockwise
    (as phones store portrait video): frames come out portrait, turned as the matrix says."""
    import av

    with av.open(str(tmp_path / "phone.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(2):
            pixels = np.zeros((48, 64, 3), np.uint8)
            pixels[:16, :16] = 255  # a mark in the stored frame's top-left corner
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    reader = Reader(tmp_path / "phone.mp4")
    assert (reader.info.width, reader.info.height) == (48, 64)
    frame = next(iter(reader.frames()))
    rows, cols = np.nonzero(frame.pixels[..., 0] > 128)
    assert frame.pixels.shape == (64, 48, 3) and rows.min() >= 48 and cols.max() < 16  # top-left turned to bottom-left


def test_video_frames_go_to_the_frame_detector(tmp_path):
    """Frames are read by the predictor's frame detector (by default the whole image alone: the
    tracker carries people, each view would be another network run per frame), never by the
    photos' detector with its views."""
    from types import SimpleNamespace

    from cliffhmr.inference.sequence import read_people
    from cliffhmr.perception.track import Tracker
    from cliffhmr.timing import StageTimer

    read = []

    class Stub:  # what read_people asks of a Predictor
        network = None

        @property
        def detector(self):
            raise AssertionError("the photos' detector read a video frame")

        def frame_detector(self, pixels):
            read.append(pixels.shape)
            return np.zeros((0, 5), np.float32)

        def keypoints(self, pixels, boxes):
            return SimpleNamespace(coco=np.zeros((0, 17, 3)), world=None)

    clip = write_video(tmp_path / "c.mp4", [0.0, 0.1, 0.2], size=(64, 48))
    frames, people, damage = read_people(Stub(), Reader(clip), FrameRange(), Tracker(), StageTimer())
    assert read == [(48, 64, 3)] * 3 and len(frames) == 3 and people == [] and damage is None


# --------------------------------------------------------------------------- the video path through the CLI



def test_a_person_after_empty_frames_and_missed_once_keeps_one_id(astronaut_clip):
    """One track, first seen at frame 2, its ID kept across the missed frame; rows only where she
    is; every frame in the overlay video, she drawn where she is."""
    frames, clip, out, stdout = astronaut_clip
    assert "clip.mp4: 7 frames, 1 person followed (fit, anny)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["clip.json", "clip.npz", "clip_overlay.mp4", "clip_track0.bvh", "clip_track0.glb"]
    d = np.load(out / "clip.npz")
    np.testing.assert_array_equal(d["frame"], [2, 3, 5, 6])
    np.testing.assert_allclose(d["time"], [0.2, 0.3, 0.5, 0.6], atol=1e-6)
    assert set(d["track_id"].tolist()) == {0}
    np.testing.assert_array_equal(d["processed_frames"], np.arange(7))
    assert "vertices" not in d and d["pred_joints"].shape == (4, 37, 3) and d["detected_keypoints"].shape == (4, 17, 3)
    np.testing.assert_array_equal(d["detection_all"][:, 0], [2, 3, 5, 6])
    assert (d["quality"] > 0.5).all()
    assert np.ptp(d["shape"], axis=0).max() == 0  # one shape for the track
    summary = json.loads((out / "clip.json").read_text())
    assert summary["frames_processed"] == 7 and summary["damage"] is None
    (track,) = summary["tracks"]
    assert (track["frames"], track["first_frame"], track["last_frame"]) == (4, 2, 6)
    overlay = list(Reader(out / "clip_overlay.mp4").frames())
    np.testing.assert_allclose([f.time for f in overlay], [i / 10 for i in range(7)], atol=1e-4)
    source = list(Reader(clip).frames())
    drawn = [(np.abs(f.pixels.astype(int) - s.pixels.astype(int)).max(-1) > 40).mean() for f, s in zip(overlay, source)]
    assert max(drawn[i] for i in (0, 1, 4)) < 0.001 and min(drawn[i] for i in (2, 3, 5, 6)) > 0.05  # meshes only where she is


def test_a_video_with_nobody_gives_empty_valid_outputs(tmp_path, capsys):
    clip = write_video(tmp_path / "empty.webm", [0.0, 0.1, 0.2], codec="libvpx-vp9", frames=[blank_frame(90, (48, 64))] * 3)
    out = tmp_path / "out"
    code, io = run(["predict", clip, "--out", out], capsys)
    assert code == 0, io.err
    assert "empty.webm: 3 frames, 0 people followed" in io.out
    d = np.load(out / "empty.npz")
    assert d["global_t"].shape == (0, 3) and d["frame"].shape == (0,) and len(d["processed_frames"]) == 3
    assert json.loads((out / "empty.json").read_text())["tracks"] == []
    assert len(list(Reader(out / "empty_overlay.mp4").frames())) == 3


def test_a_damaged_video_keeps_the_frames_before_the_damage_and_exits_2(tmp_path, capsys):
    rng = np.random.default_rng(3)
    noise = [np.clip(rng.normal(60, 30, (96, 128, 3)), 0, 255).astype(np.uint8) for _ in range(24)]
    data = bytearray(write_video(tmp_path / "w.mp4", [i / 30 for i in range(24)], size=(128, 96), faststart=True, frames=noise).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = rng.integers(0, 255, 3000, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    out = tmp_path / "out"
    code, io = run(["predict", tmp_path / "bad.mp4", "--out", out], capsys)
    assert_one_line_error(code, io.err, "bad.mp4: damaged after frame", "the results hold the")
    n = int(io.err.split("the results hold the ")[1].split()[0])
    assert 3 < n < 24
    d = np.load(out / "bad.npz")
    np.testing.assert_array_equal(d["processed_frames"], np.arange(n))
    assert len(list(Reader(out / "bad_overlay.mp4").frames())) == n
    assert json.loads((out / "bad.json").read_text())["damage"].startswith(str(tmp_path / "bad.mp4"))
    # Cut off: the same, the line saying where it ended.
    whole = write_video(tmp_path / "whole.mp4", [i / 30 for i in range(24)], size=(128, 96), faststart=True, frames=noise).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    code, io = run(["predict", tmp_path / "cut.mp4", "--out", out, "--no-render"], capsys)
    assert_one_line_error(code, io.err, "cut.mp4: ended at", "cut off?", "the results hold the")
    assert sorted(p.name for p in out.iterdir() if p.stem.startswith("cut")) == ["cut.json", "cut.npz"]


def test_variable_frame_rate_and_chosen_frames_reach_the_results(tmp_path, capsys):
    times = [0.0, 0.05, 0.1, 0.3, 0.32, 0.6, 0.61, 0.9]
    clip = write_video(tmp_path / "vfr.mp4", times, frames=[blank_frame(40 + 10 * i, (48, 64)) for i in range(8)])
    out = tmp_path / "out"
    code, io = run(["predict", clip, "--out", out], capsys)
    assert code == 0, io.err
    d = np.load(out / "vfr.npz")
    np.testing.assert_allclose(d["processed_times"], times, atol=1e-6)
    np.testing.assert_allclose([f.time for f in Reader(out / "vfr_overlay.mp4").frames()], times, atol=1e-4)
    code, io = run(["predict", clip, "--out", out, "--start", "0.08", "--end", "0.7", "--every", "2", "--no-render"], capsys)
    assert code == 0, io.err
    np.testing.assert_array_equal(np.load(out / "vfr.npz")["processed_frames"], [2, 4, 6])  # 0.1, 0.32, 0.61 s
    assert not (out / "vfr_overlay.mp4").exists()  # the rerun's set replaces the earlier one
    # A folder of numbered frames at --fps is one video too.
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(blank_frame(50 * i, (32, 40))).save(folder / f"f{i + 1}.png")
    code, io = run(["predict", folder, "--fps", "4", "--out", out], capsys)
    assert code == 0, io.err
    np.testing.assert_allclose(np.load(out / "frames.npz")["processed_times"], [0, 0.25, 0.5])
    (folder / "f3.png").write_bytes(b"broken")  # the third frame: what came before it is kept
    code, io = run(["predict", folder, "--fps", "4", "--out", out], capsys)
    assert_one_line_error(code, io.err, "f3.png: not a readable image", "the results hold the 2 frames before it")
    np.testing.assert_allclose(np.load(out / "frames.npz")["processed_times"], [0, 0.25])


def test_video_arguments_that_make_no_sense_get_one_line(tmp_path, capsys):
    clip = write_video(tmp_path / "c.mp4", [0.0, 0.1])
    photo = tmp_path / "p.png"
    Image.fromarray(blank_frame()).save(photo)
    out = tmp_path / "out"
    for args, words in [
        ([clip, "--every", "0"], ["--every"]),
        ([clip, "--start", "2", "--end", "1"], ["--end"]),
        ([clip, "--fps", "25"], ["--fps is for a folder of frames"]),
        ([photo, "--every", "2"], ["choose frames of a video"]),
        ([clip, "--boxes", photo], ["--boxes and --keypoints are for photos"]),
        ([tmp_path / "missing.mp4"], ["no such video file"]),
    ]:
        code, io = run(["predict", *args, "--out", out], capsys)
        assert_one_line_error(code, io.err, *words)


def test_the_network_path_is_tracked_and_smoothed_too(tmp_path, capsys, smpl_pkl, res50_ckpt):
    """With --checkpoint (random CLIFF weights, a random SMPL-format model), the network's estimate
    starts each person's fit from scratch, and the same tracking and warm starts follow: one
    track, SMPL's 24 joints in the npz and the animations, one shape."""
    frames = [astronaut_frame(0), astronaut_frame(3), astronaut_frame(6)]
    clip = write_video(tmp_path / "net.mp4", [0.0, 0.1, 0.2], size=(256, 256), frames=frames)
    out = tmp_path / "out"
    code, io = run(["predict", clip, "--out", out, "--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--fit-iterations", 20], capsys)
    assert code == 0, io.err
    assert "net.mp4: 3 frames, 1 person followed (cliff+fit, smpl)" in io.out
    d = np.load(out / "net.npz")
    assert d["pose"].shape == (3, 72) and set(d["track_id"].tolist()) == {0} and np.isfinite(d["pred_joints"]).all()
    assert np.ptp(d["shape"], axis=0).max() == 0
    names, frames_in_bvh, _, _ = read_bvh(out / "net_track0.bvh")
    assert len(names) == 24 and frames_in_bvh == 3
    # With no fitting steps, the track's first frame is where the network put her.
    code, io = run(["predict", clip, "--out", out, "--checkpoint", res50_ckpt, "--smpl", smpl_pkl, "--fit-iterations", 0], capsys)
    assert code == 0, io.err
    d = np.load(out / "net.npz")
    from cliffhmr.geometry.camera import Intrinsics
    from cliffhmr.inference.pipeline import Predictor, PredictorConfig

    first = next(iter(Reader(clip).frames())).pixels
    K = Intrinsics(*d["intrinsics"][[0, 1, 0, 1], [0, 1, 2, 2]])
    predictor = Predictor(PredictorConfig(checkpoint=str(res50_ckpt), body_model=str(smpl_pkl)))
    (network,) = predictor.network_estimates([(first, d["detection_all"][:1, 1:], K)])
    np.testing.assert_allclose(d["rotmat"][0], network.rotmat[0].numpy(), atol=1e-5)


def test_network_estimates_of_several_frames_go_to_their_own_people(tmp_path, smpl_pkl, res50_ckpt):
    """Read with the people of several frames in one network batch, or one frame at a time: each
    observation holds the estimate of its own frame's crop."""
    from cliffhmr.geometry.camera import Intrinsics
    from cliffhmr.inference.engine import EngineConfig
    from cliffhmr.inference.pipeline import Predictor, PredictorConfig
    from cliffhmr.inference.sequence import read_people
    from cliffhmr.perception.track import Tracker
    from cliffhmr.timing import StageTimer

    frames = [astronaut_frame(0), astronaut_frame(8), astronaut_frame(16), blank_frame()]
    clip = write_video(tmp_path / "net.mp4", [0.0, 0.1, 0.2, 0.3], size=(256, 256), frames=frames)
    K = Intrinsics(300.0, 300.0, 128.0, 128.0)
    got = {}
    for batch in (1, 64):
        predictor = Predictor(PredictorConfig(checkpoint=str(res50_ckpt), body_model=str(smpl_pkl), engine=EngineConfig(batch_size=batch)))
        _, obs, _ = read_people(predictor, Reader(clip), FrameRange(), Tracker(), StageTimer(), K)
        got[batch] = obs
    pixels = [f.pixels for f in Reader(clip).frames()]
    assert len(got[64]) >= 3 and {o.frame for o in got[64]} >= {0, 1, 2}
    for a, b in zip(got[1], got[64]):
        (alone,) = predictor.network_estimates([(pixels[b.frame], b.box[None], K)])
        for o in (a, b):
            np.testing.assert_allclose(o.network.rotmat.numpy(), alone.rotmat.numpy(), atol=1e-5)
            np.testing.assert_allclose(o.network.transl.numpy(), alone.transl.numpy(), atol=1e-4)
