// The ring of an incoming call, synthesized with WebAudio (no audio file): two 0.4 s
// bursts of 440 Hz + 480 Hz, then a pause, every 3 s, until the call is answered,
// declined or gone. Not played while the user's status is "do not disturb".

const PERIOD_MS = 3000;
const VOLUME = 0.08;

let ctx = null;
let out = null; // analyser in front of the speakers (ringLevel reads it)
let timer = null;

function burst() {
  const t = ctx.currentTime;
  for (const start of [0, 0.6]) {
    for (const freq of [440, 480]) {
      const osc = ctx.createOscillator();
      osc.frequency.value = freq;
      const gain = ctx.createGain();
      gain.gain.setValueAtTime(0, t + start);
      gain.gain.linearRampToValueAtTime(VOLUME, t + start + 0.02);
      gain.gain.setValueAtTime(VOLUME, t + start + 0.38);
      gain.gain.linearRampToValueAtTime(0, t + start + 0.4);
      osc.connect(gain).connect(out);
      osc.start(t + start);
      osc.stop(t + start + 0.42);
    }
  }
}

/** Starts ringing (again: nothing). Browsers may keep audio off until the page was used. */
export function startRing() {
  if (timer) return;
  try {
    ctx = ctx || new AudioContext();
  } catch {
    return; // no WebAudio: the card and the title still say it
  }
  ctx.resume().catch(() => {});
  out = ctx.createAnalyser();
  out.connect(ctx.destination);
  burst();
  timer = setInterval(burst, PERIOD_MS);
}

export function stopRing() {
  clearInterval(timer);
  timer = null;
  out?.disconnect();
  out = null;
}

/** Whether the ring is on. */
export function ringing() {
  return timer !== null;
}

/** The ring's current peak amplitude (0 when silent), for tests. */
export function ringLevel() {
  if (!out) return 0;
  const samples = new Float32Array(out.fftSize);
  out.getFloatTimeDomainData(samples);
  return samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}
