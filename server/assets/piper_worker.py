# Hookline's Piper worker: loads one voice once, then synthesises requests
# (one JSON line each on stdin) and streams audio back sentence by sentence.
# Frames on stdout: b"R" rate:u32 (once, at start); b"A" len:u32 pcm16 (a
# sentence); b"E" (request done); b"X" len:u32 utf-8 (request failed).
import json
import struct
import sys

from piper import PiperVoice

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
