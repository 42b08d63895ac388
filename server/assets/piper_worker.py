# Hookline's Piper worker: loads one voice once, then synthesises requests
# (one JSON line each on stdin) and streams audio back sentence by sentence.
# Frames on stdout: b"R" rate:u32 (once, at start); b"A" len:u32 pcm16 (a
# sentence); b"E" (request done); b"X" len:u32 utf-8 (request failed).
import json
import struct
import sys

import onnxruntime
from piper import PiperVoice

# argv[2]: threads for this worker's inference. With one thread per worker,
# a pool of workers spreads over the cores instead of each taking them all.
if len(sys.argv) > 2 and int(sys.argv[2]) > 0:
    _session = onnxruntime.InferenceSession

    def _one_thread_session(path, sess_options=None, **kw):
        opts = sess_options or onnxruntime.SessionOptions()
        opts.intra_op_num_threads = int(sys.argv[2])
        opts.inter_op_num_threads = 1
        return _session(path, sess_options=opts, **kw)

    onnxruntime.InferenceSession = _one_thread_session

voice = PiperVoice.load(sys.argv[1])
out = sys.stdout.buffer
out.write(b"R" + struct.pack("<I", voice.config.sample_rate))
out.flush()
for line in sys.stdin:
    try:
        text = json.loads(line)["text"]
        for chunk in voice.synthesize(text):
            pcm = chunk.audio_int16_bytes
            out.write(b"A" + struct.pack("<I", len(pcm)) + pcm)
            out.flush()
        out.write(b"E")
    except Exception as e:  # one bad request must not end the worker
        msg = str(e).encode()
        out.write(b"X" + struct.pack("<I", len(msg)) + msg)
    out.flush()
