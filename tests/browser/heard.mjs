// What a page plays, by content: the loudest frequency of a media element's
// stream (an AnalyserNode over the remote WebRTC audio), shared by the
// browser tests. With `want` (Hz) it waits up to `waitMs` for that tone to
// be the loudest (above -60 dBFS); without, it reports the loudest over
// `waitMs`.
export async function loudest(page, elementId, want, waitMs) {
  return page.evaluate(async ([id, want, waitMs]) => {
    const stream = document.getElementById(id).srcObject;
    if (!stream) return { freq: 0, db: -200 };
    const ctx = new AudioContext();
    const an = ctx.createAnalyser();
    an.fftSize = 8192;
    ctx.createMediaStreamSource(stream).connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    let best = { freq: 0, db: -200 };
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      an.getFloatFrequencyData(bins);
      let i = 1;
      for (let k = 1; k < bins.length; k++) if (bins[k] > bins[i]) i = k;
      const f = (i * ctx.sampleRate) / an.fftSize;
      if (want && bins[i] > -60 && Math.abs(f - want) < 30) { best = { freq: f, db: bins[i] }; break; }
      if (bins[i] > best.db) best = { freq: f, db: bins[i] };
    }
    ctx.close();
    return best;
  }, [elementId, want, waitMs]);
}
