#!/usr/bin/env python3
"""Golden data for include/prefopt/train/tensorboard.hpp (tests/train/tensorboard_test.cpp).

Two modes:

  tensorboard_make_reference.py make [OUT_DIR]   (default OUT_DIR: tests/data/tensorboard)
      Writes, with TensorBoard's own writer, an event file holding a fixed list of events, and the
      list itself, so the C++ writer can be fed the same events and compared byte for byte:
        reference.tfevents  written by tensorboard.summary.writer.event_file_writer.EventFileWriter
                            (the class behind torch.utils.tensorboard.SummaryWriter); its clock is
                            pinned so the first record (file_version) carries a fixed wall_time.
                            Scalars are built by torch.utils.tensorboard.summary.scalar (what
                            SummaryWriter.add_scalar and Hugging Face's TensorBoardCallback use:
                            Summary.Value.simple_value), text by tensorboard's text_pb.
        events.json         the same events as data: the first record's wall_time and writer
                            name, then one entry per record, {"wall_time", "step", "scalars":
                            [[tag, value], ...]}, {"wall_time", "step", "text": [tag, string]} or
                            {"wall_time", "step", "session_start": true};
                            non-finite values are the strings "nan", "inf", "-inf".
      Rerunning it produces identical files.

  tensorboard_make_reference.py read LOGDIR
      Loads every event file in LOGDIR with TensorBoard's EventAccumulator (the loader behind the
      TensorBoard UI) and prints each scalar series and text tensor, to check that files written
      by the C++ writer load.

Needs: pip install tensorboard (and torch for the scalar helper).
"""
import json
import math
import os
import sys

FIRST_WALL_TIME = 1700000000.25
WRITER_NAME = "tensorboard.summary.writer.event_file_writer"

# (wall_time, step, payload): payload is ("scalars", [(tag, value), ...]), ("text", (tag, text)) or
# ("session_start", None) (SessionLog{status: START}: TensorBoard drops older data at steps >= step).
EVENTS = [
    (1700000001.125, 0, ("scalars", [("train/loss", 0.6931471805599453)])),
    (1700000002.5, 1, ("scalars", [("train/loss", 0.6875), ("train/rewards/chosen", -1.5), ("train/rewards/accuracies", 0.0)])),
    (1700000003.0, 2, ("scalars", [("train/learning_rate", 1e-07)])),
    (1700000004.75, 127, ("scalars", [("train/grad_norm", 12345.678)])),
    (1700000005.0, 128, ("scalars", [("train/rewards/margins", float("nan"))])),
    (1700000006.0, 300, ("scalars", [("eval/loss", float("inf")), ("eval/rewards/rejected", float("-inf"))])),
    (1700000007.0625, 2**40 + 3, ("scalars", [("train/epoch", 3.0)])),
    (1700000008.0, 5, ("text", ("config", "beta = 0.1, **héllo** ✓"))),
    (1700000009.0, 2**40 + 4, ("session_start", None)),
]


def encode_value(v):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def make(out_dir):
    import tempfile

    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.text.summary_v2 import text_pb
    from tensorboard.summary.writer import event_file_writer
    from torch.utils.tensorboard.summary import scalar

    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        real_time = event_file_writer.time.time
        event_file_writer.time.time = lambda: FIRST_WALL_TIME  # pins the file_version record's wall_time
        try:
            writer = event_file_writer.EventFileWriter(tmp)
        finally:
            event_file_writer.time.time = real_time
        for wall_time, step, (kind, payload) in EVENTS:
            if kind == "session_start":
                start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
                writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, session_log=start))
                continue
            if kind == "scalars":
                summary = summary_pb2.Summary()
                for tag, value in payload:
                    summary.value.extend(scalar(tag, value).value)
            else:
                summary = text_pb(payload[0], payload[1])
            writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))
        writer.close()
        (name,) = os.listdir(tmp)
        with open(os.path.join(tmp, name), "rb") as f:
            data = f.read()
    with open(os.path.join(out_dir, "reference.tfevents"), "wb") as f:
        f.write(data)
    listing = {
        "first_wall_time": FIRST_WALL_TIME,
        "writer": WRITER_NAME,
        "events": [],
    }
    for wall_time, step, (kind, payload) in EVENTS:
        entry = {"wall_time": wall_time, "step": step}
        if kind == "scalars":
            entry["scalars"] = [[tag, encode_value(v)] for tag, v in payload]
        elif kind == "session_start":
            entry["session_start"] = True
        else:
            entry["text"] = list(payload)
        listing["events"].append(entry)
    with open(os.path.join(out_dir, "events.json"), "w", encoding="utf-8") as f:
        head = {k: listing[k] for k in ("first_wall_time", "writer")}
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "events": [\n')
        f.write(",\n".join(json.dumps(e, ensure_ascii=False) for e in listing["events"]))
        f.write("\n]}\n")
    print(f"wrote {out_dir}/reference.tfevents ({len(data)} bytes) and {out_dir}/events.json")


def read(logdir):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.text import metadata as text_metadata

    acc = event_accumulator.EventAccumulator(logdir, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    print("file_version:", acc.file_version)
    tags = acc.Tags()
    for tag in sorted(tags["scalars"]):
        for e in acc.Scalars(tag):
            print(f"scalar {tag} step={e.step} wall_time={e.wall_time!r} value={e.value!r}")
    text_tags = set(acc.PluginTagToContent(text_metadata.PLUGIN_NAME)) if tags["tensors"] else set()
    for tag in sorted(tags["tensors"]):
        for e in acc.Tensors(tag):
            kind = "text" if tag in text_tags else "tensor"
            values = [s.decode("utf-8") for s in e.tensor_proto.string_val]
            print(f"{kind} {tag} step={e.step} wall_time={e.wall_time!r} value={values!r}")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "..", "tests", "data", "tensorboard")
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        make(os.path.normpath(sys.argv[2] if len(sys.argv) > 2 else default_out))
    elif len(sys.argv) == 3 and sys.argv[1] == "read":
        read(sys.argv[2])
    else:
        sys.exit(__doc__)
