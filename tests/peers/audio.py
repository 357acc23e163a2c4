#!/usr/bin/env python3
"""Pure-Python audio helpers for the real-UA interop tests.

Only the standard library is used (wave, math, struct, json): no numpy.

* ``write_tone(path, freq_hz, secs, rate=8000, amplitude=0.3)`` writes a 16-bit
  mono PCM WAV containing a sine tone (with 5 ms fade in/out).
* ``tone_power_ratio(path, freq_hz, ...)`` / ``tone_report(...)`` run a Goertzel
  filter over 20 ms blocks and report, per block, the fraction of the block's
  energy that sits at ``freq_hz``.
* ``detect_tone(path, freq_hz, min_secs=0.5) -> bool`` is true when the target
  frequency dominates (>= ``min_ratio`` of block energy, and at least
  ``dominance`` times stronger than every other "competitor" test frequency)
  for at least ``min_secs`` in total (blocks need not be contiguous).

Recorder WAVs of any sample rate, channel count (channels are averaged) and
sample width (8/16/24/32-bit PCM) are accepted.  WAV files that ``wave`` can't
parse (e.g. WAVE_FORMAT_EXTENSIBLE headers) are handled by a small RIFF reader.

CLI::

    python3 tests/peers/audio.py detect FILE FREQ [--min-secs S] [--min-ratio R]
    python3 tests/peers/audio.py write FILE FREQ SECS [--rate N] [--amplitude A]
    python3 tests/peers/audio.py report FILE FREQ     # per-block ratios

``detect`` prints one JSON object, e.g.
``{"file": "...", "freq": 1000.0, "detected": true, "secs": 2.34, ...}`` and
exits 0 whether or not the tone was found (exit 2 on unreadable files).
"""

import json
import math
import struct
import sys
import wave

# Frequencies used by the tests; when checking one of them, the others are
# competitors that must be clearly weaker in a block for it to count.
TEST_FREQS = (440.0, 697.0, 770.0, 852.0, 941.0, 1000.0, 1209.0, 1336.0,
              1477.0, 1500.0, 2000.0)

BLOCK_SECS = 0.020


# ---------------------------------------------------------------- writing ---

def write_tone(path, freq_hz, secs, rate=8000, amplitude=0.3):
    """Write a 16-bit mono PCM WAV of a sine tone at ``freq_hz``."""
    n = int(round(secs * rate))
    fade = max(1, int(rate * 0.005))
    peak = max(0.0, min(1.0, float(amplitude))) * 32767.0
    w = 2.0 * math.pi * float(freq_hz) / rate
    frames = bytearray()
    pack = struct.Struct("<h").pack
    for i in range(n):
        g = 1.0
        if i < fade:
            g = i / fade
        elif n - i <= fade:
            g = (n - i) / fade
        frames += pack(int(round(peak * g * math.sin(w * i))))
    with wave.open(path, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(bytes(frames))
    return path


# ---------------------------------------------------------------- reading ---

def _decode_pcm(raw, width, channels):
    """Decode little-endian PCM bytes into a list of mono floats in [-1, 1]."""
    if width == 1:
        vals = [(b - 128) / 128.0 for b in raw]
    elif width == 2:
        cnt = len(raw) // 2
        vals = [v / 32768.0 for v in struct.unpack("<%dh" % cnt, raw[:cnt * 2])]
    elif width == 3:
        vals = []
        for i in range(0, len(raw) - 2, 3):
            v = raw[i] | (raw[i + 1] << 8) | (raw[i + 2] << 16)
            if v & 0x800000:
                v -= 0x1000000
            vals.append(v / 8388608.0)
    elif width == 4:
        cnt = len(raw) // 4
        vals = [v / 2147483648.0 for v in struct.unpack("<%di" % cnt, raw[:cnt * 4])]
    else:
        raise ValueError("unsupported sample width %d" % width)
    if channels <= 1:
        return vals
    out = []
    for i in range(0, len(vals) - channels + 1, channels):
        out.append(sum(vals[i:i + channels]) / channels)
    return out


def _read_riff(path):
    """Minimal RIFF/WAVE reader (handles WAVE_FORMAT_EXTENSIBLE, odd chunks)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file: %s" % path)
    pos = 12
    fmt = None
    pcm = None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, ch, rate, _br, _ba, bits = struct.unpack("<HHIIHH", body[:16])
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            # recorders still writing (or killed) may leave size 0 / bogus
            if size == 0 or pos + 8 + size > len(data):
                body = data[pos + 8:]
            pcm = body
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError("no fmt/data chunk in %s" % path)
    tag, ch, rate, bits = fmt
    if tag not in (1, 0xFFFE):
        raise ValueError("unsupported WAV format tag 0x%x in %s" % (tag, path))
    width = bits // 8
    pcm = pcm[:len(pcm) - (len(pcm) % max(1, width * ch))]
    return _decode_pcm(pcm, width, ch), rate


def read_wav(path):
    """Return (mono float samples, sample rate) for a PCM WAV file."""
    try:
        with wave.open(path, "rb") as wf:
            ch = wf.getnchannels()
            width = wf.getsampwidth()
            rate = wf.getframerate()
            raw = wf.readframes(wf.getnframes())
        samples = _decode_pcm(raw, width, ch)
        # A recorder killed before finalising its header reports 0 frames;
        # then fall back to the raw reader, which uses the rest of the file.
        if samples:
            return samples, rate
    except (wave.Error, EOFError, ValueError, struct.error):
        pass
    return _read_riff(path)


# --------------------------------------------------------------- analysis ---

def _goertzel_power(block, coeff):
    s1 = 0.0
    s2 = 0.0
    for x in block:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def _block_ratio(block, freq, rate):
    """Fraction of the block's energy at ``freq`` (0..~1) using Goertzel.

    For a pure sinusoid at the bin frequency, Goertzel power is N^2 A^2 / 4 and
    the block energy sum(x^2) is N A^2 / 2, so power * 2 / (N * energy) = 1.
    A Hann window would smear; instead the block is matched to an integer
    number of cycles where possible by using the exact (non-integer) bin.
    """
    n = len(block)
    energy = 0.0
    for x in block:
        energy += x * x
    if energy <= 0.0 or n == 0:
        return 0.0, 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    p = _goertzel_power(block, coeff)
    return max(0.0, p * 2.0 / (n * energy)), energy / n


def tone_report(path, freq_hz, competitors=None, min_ratio=0.5, dominance=4.0,
                min_rms=0.003, block_secs=BLOCK_SECS):
    """Analyse ``path`` for ``freq_hz``; return a dict with the details.

    A block "hits" when its RMS >= ``min_rms`` (not silence), the target's
    energy ratio >= ``min_ratio`` and the ratio is >= ``dominance`` times every
    competitor's ratio (competitors default to TEST_FREQS minus anything
    within 60 Hz of the target and anything above Nyquist).
    """
    samples, rate = read_wav(path)
    freq = float(freq_hz)
    if competitors is None:
        competitors = [f for f in TEST_FREQS if abs(f - freq) > 60.0]
    competitors = [float(f) for f in competitors if float(f) < rate / 2.0]
    n = max(1, int(round(rate * block_secs)))
    hits = 0
    blocks = 0
    voiced = 0
    best = 0.0
    ratio_sum = 0.0
    first_hit = None
    min_rms_sq = min_rms * min_rms
    for start in range(0, len(samples) - n + 1, n):
        block = samples[start:start + n]
        blocks += 1
        ratio, msq = _block_ratio(block, freq, rate)
        if msq < min_rms_sq:
            continue
        voiced += 1
        ratio_sum += ratio
        best = max(best, ratio)
        if ratio < min_ratio:
            continue
        ok = True
        for c in competitors:
            cr, _ = _block_ratio(block, c, rate)
            if cr * dominance > ratio:
                ok = False
                break
        if ok:
            hits += 1
            if first_hit is None:
                first_hit = start / float(rate)
    return {
        "file": path,
        "freq": freq,
        "rate": rate,
        "duration": len(samples) / float(rate) if rate else 0.0,
        "blocks": blocks,
        "voiced_blocks": voiced,
        "hit_blocks": hits,
        "secs": round(hits * n / float(rate), 3) if rate else 0.0,
        "first_hit_at": None if first_hit is None else round(first_hit, 3),
        "best_ratio": round(best, 4),
        "mean_voiced_ratio": round(ratio_sum / voiced, 4) if voiced else 0.0,
    }


def tone_power_ratio(path, freq_hz, **kw):
    """Mean fraction of energy at ``freq_hz`` over the non-silent blocks."""
    return tone_report(path, freq_hz, **kw)["mean_voiced_ratio"]


def tone_secs(path, freq_hz, **kw):
    """Total seconds (20 ms blocks) in which ``freq_hz`` dominates."""
    return tone_report(path, freq_hz, **kw)["secs"]


def detect_tone(path, freq_hz, min_secs=0.5, **kw):
    """True if ``freq_hz`` dominates for at least ``min_secs`` in total."""
    try:
        return tone_report(path, freq_hz, **kw)["secs"] >= min_secs
    except (OSError, ValueError):
        return False


# -------------------------------------------------------------------- CLI ---

def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="audio.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("detect", help="detect a tone in a WAV, print JSON")
    d.add_argument("file")
    d.add_argument("freq", type=float)
    d.add_argument("--min-secs", type=float, default=0.5)
    d.add_argument("--min-ratio", type=float, default=0.5)
    d.add_argument("--dominance", type=float, default=4.0)
    r = sub.add_parser("report", help="per-file analysis details as JSON")
    r.add_argument("file")
    r.add_argument("freq", type=float)
    w = sub.add_parser("write", help="write a tone WAV")
    w.add_argument("file")
    w.add_argument("freq", type=float)
    w.add_argument("secs", type=float)
    w.add_argument("--rate", type=int, default=8000)
    w.add_argument("--amplitude", type=float, default=0.3)
    a = ap.parse_args(argv)
    if a.cmd == "write":
        write_tone(a.file, a.freq, a.secs, rate=a.rate, amplitude=a.amplitude)
        print(json.dumps({"file": a.file, "written": True}))
        return 0
    try:
        if a.cmd == "detect":
            rep = tone_report(a.file, a.freq, min_ratio=a.min_ratio,
                              dominance=a.dominance)
            rep["min_secs"] = a.min_secs
            rep["detected"] = rep["secs"] >= a.min_secs
        else:
            rep = tone_report(a.file, a.freq)
    except (OSError, ValueError) as e:
        print(json.dumps({"file": a.file, "freq": a.freq, "detected": False,
                          "error": str(e)}))
        return 2
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
