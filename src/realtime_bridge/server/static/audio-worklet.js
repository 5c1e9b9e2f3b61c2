// AudioWorklet processors for the demo page: microphone capture (resampled to 24 kHz PCM16)
// and playback of 24 kHz PCM16 with a jitter buffer. Loaded with audioWorklet.addModule().
//
// Why 24 kHz on the wire: it is the only PCM rate the Realtime API accepts, so the page works
// unchanged against any upstream (and any bridge version), and the bridge has nothing to convert.
// The browser's own rate (44.1/48 kHz) is converted here, on the audio thread.

const WIRE_RATE = 24000;

/**
 * Streaming band-limited resampler (windowed sinc, Blackman window, kernel from a lookup table).
 * State is kept across calls, so chunk boundaries make no clicks. When downsampling, the
 * kernel's cut-off sits below the new Nyquist frequency (no aliasing); when upsampling, below
 * the old one (no images).
 */
class Resampler {
  constructor(inRate, outRate, zeroCrossings = 16) {
    this.step = inRate / outRate; // input samples per output sample
    this.cutoff = Math.min(1, outRate / inRate) * 0.92; // fraction of the input Nyquist
    this.half = zeroCrossings / this.cutoff; // kernel half-width, in input samples
    this.table = Resampler.kernelTable(this.cutoff, this.half, 64);
    this.tableScale = (this.table.length - 2) / this.half;
    const pad = Math.ceil(this.half) + 1;
    this.buf = new Float32Array(4096);
    this.len = pad; // `pad` zeros of history before the first real sample
    this.pos = pad; // input position of the next output sample
    this.end = pad; // end of real input (excludes flush padding)
  }

  static kernelTable(cutoff, half, perUnit) {
    const size = Math.ceil(half * perUnit) + 2;
    const table = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const x = i / perUnit;
      if (x >= half) break;
      const u = x / half; // 0..1 across the half-window
      const window = 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
      const arg = Math.PI * cutoff * x;
      table[i] = cutoff * (x === 0 ? 1 : Math.sin(arg) / arg) * window;
    }
    return table;
  }

  push(samples) {
    if (this.len + samples.length > this.buf.length) {
      const grown = new Float32Array(Math.max(this.buf.length * 2, this.len + samples.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
    this.end = this.len;
  }

  /** Output samples for everything pushed so far that has enough look-ahead. */
  process(samples) {
    if (samples && samples.length) this.push(samples);
    return this.drain(this.len - this.half);
  }

  /** The tail: pads with silence and returns the rest of the real input's output. */
  flush() {
    const pad = new Float32Array(Math.ceil(this.half) + 1);
    const end = this.end;
    this.push(pad);
    this.end = end;
    const out = this.drain(end);
    // drop the padding again (drain() may have shifted indices; `end` followed them)
    this.len = this.end;
    return out;
  }

  drain(limit) {
    const count = Math.max(0, Math.ceil((limit - this.pos) / this.step));
    const out = new Float32Array(count);
    const { buf, table, tableScale, half } = this;
    let pos = this.pos;
    for (let n = 0; n < count; n++) {
      const first = Math.max(0, Math.ceil(pos - half));
      const last = Math.min(this.len - 1, Math.floor(pos + half));
      let acc = 0;
      for (let k = first; k <= last; k++) {
        const t = Math.abs(pos - k) * tableScale;
        const i = t | 0;
        const f = t - i;
        acc += buf[k] * (table[i] + (table[i + 1] - table[i]) * f);
      }
      out[n] = acc;
      pos += this.step;
    }
    this.pos = pos;
    // forget input no output can need any more
    const drop = Math.floor(this.pos - half) - 1;
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      this.end -= drop;
      this.pos -= drop;
    }
    return out;
  }
}

function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
  }
  return out;
}

/**
 * Microphone → 24 kHz PCM16 frames of `frameMs` (default 20 ms), posted to the main thread as
 * {type:"frame", pcm: ArrayBuffer, level: RMS 0..1}. Message {type:"flush"} sends what is
 * pending (resampler tail included) and answers {type:"flushed"}.
 */
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameMs = (options.processorOptions && options.processorOptions.frameMs) || 20;
    this.frameSamples = Math.round((WIRE_RATE * frameMs) / 1000);
    this.resampler = new Resampler(sampleRate, WIRE_RATE);
    this.pending = new Float32Array(this.frameSamples);
    this.fill = 0;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "flush") {
        this.append(this.resampler.flush());
        if (this.fill > 0) this.emit(this.fill);
        this.port.postMessage({ type: "flushed" });
      }
    };
  }

  append(samples) {
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(samples.length - offset, this.frameSamples - this.fill);
      this.pending.set(samples.subarray(offset, offset + n), this.fill);
      this.fill += n;
      offset += n;
      if (this.fill === this.frameSamples) this.emit(this.fill);
    }
  }

  emit(count) {
    const frame = this.pending.subarray(0, count);
    let energy = 0;
    for (let i = 0; i < count; i++) energy += frame[i] * frame[i];
    const pcm = floatToPcm16(frame);
    this.port.postMessage({ type: "frame", pcm: pcm.buffer, level: Math.sqrt(energy / count) }, [
      pcm.buffer,
    ]);
    this.fill = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      let mono = input[0];
      if (input.length > 1) {
        mono = new Float32Array(input[0].length);
        for (const channel of input) {
          for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / input.length;
        }
      }
      this.append(this.resampler.process(mono));
    }
    return true;
  }
}

/**
 * 24 kHz PCM16 chunks → the context's rate, through a jitter buffer.
 *
 * Playback starts once `targetMs` is buffered (or the stream has ended); an underrun goes back to
 * buffering and raises the target by 20 ms (up to `maxTargetMs`), so a jittery network costs a
 * little latency instead of repeated gaps. Played audio is counted per item in output frames.
 *
 * Messages in: {type:"push", item, pcm: ArrayBuffer}, {type:"end", item}, {type:"clear", item}.
 * Messages out: {type:"stats", ...} about every 50 ms and when something changes, and
 * {type:"cleared", ...} (the exact played position at the moment playback stopped).
 */
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.targetFrames = Math.round(((opts.targetMs || 80) * sampleRate) / 1000);
    this.maxTargetFrames = Math.round(((opts.maxTargetMs || 300) * sampleRate) / 1000);
    this.queue = []; // {item, data: Float32Array}
    this.offset = 0; // read position in queue[0].data
    this.buffered = 0; // frames queued
    this.playing = false;
    this.ended = new Set(); // items whose stream is complete
    this.resampler = null;
    this.resamplerItem = null;
    this.played = new Map(); // item → frames played
    this.currentItem = null;
    this.totalPlayed = 0;
    this.underruns = 0;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  resamplerFor(item) {
    if (this.resamplerItem !== item) {
      this.resampler = new Resampler(WIRE_RATE, sampleRate);
      this.resamplerItem = item;
    }
    return this.resampler;
  }

  enqueue(item, data) {
    if (data.length === 0) return;
    this.queue.push({ item, data });
    this.buffered += data.length;
  }

  onMessage(msg) {
    if (msg.type === "push") {
      const pcm = new Int16Array(msg.pcm);
      const floats = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 0x8000;
      this.enqueue(msg.item, this.resamplerFor(msg.item).process(floats));
    } else if (msg.type === "end") {
      if (this.resamplerItem === msg.item && this.resampler) {
        this.enqueue(msg.item, this.resampler.flush());
        this.resamplerItem = null;
      }
      this.ended.add(msg.item);
      if (this.ended.size > 64) this.ended.delete(this.ended.values().next().value);
    } else if (msg.type === "clear") {
      const item = msg.item === undefined ? this.currentItem : msg.item;
      const wasPlaying = this.playing && this.currentItem === item;
      this.queue = [];
      this.offset = 0;
      this.buffered = 0;
      this.playing = false;
      this.resampler = null;
      this.resamplerItem = null;
      this.port.postMessage({
        type: "cleared",
        item,
        playedFrames: item === null ? 0 : this.played.get(item) || 0,
        wasPlaying,
        sampleRate,
      });
      this.report();
    }
  }

  report() {
    this.sinceReport = 0;
    const item = this.currentItem;
    this.port.postMessage({
      type: "stats",
      item,
      itemPlayedFrames: item === null ? 0 : this.played.get(item) || 0,
      totalPlayedFrames: this.totalPlayed,
      bufferedFrames: this.buffered,
      playing: this.playing,
      underruns: this.underruns,
      targetFrames: this.targetFrames,
      sampleRate,
    });
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const frames = out.length;
    let written = 0;
    if (!this.playing && this.queue.length > 0) {
      const last = this.queue[this.queue.length - 1].item;
      if (this.buffered >= this.targetFrames || this.ended.has(last)) this.playing = true;
    }
    while (this.playing && written < frames && this.queue.length > 0) {
      const head = this.queue[0];
      const n = Math.min(frames - written, head.data.length - this.offset);
      out.set(head.data.subarray(this.offset, this.offset + n), written);
      written += n;
      this.offset += n;
      this.buffered -= n;
      this.totalPlayed += n;
      this.currentItem = head.item;
      this.played.set(head.item, (this.played.get(head.item) || 0) + n);
      if (this.offset >= head.data.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
    if (this.playing && this.queue.length === 0) {
      // drained: a finished stream just ends; an unfinished one has underrun
      this.playing = false;
      if (!this.ended.has(this.currentItem)) {
        this.underruns += 1;
        this.targetFrames = Math.min(
          this.maxTargetFrames,
          this.targetFrames + Math.round(0.02 * sampleRate),
        );
      }
      this.report();
    }
    for (let i = written; i < frames; i++) out[i] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (this.played.size > 32) {
      const oldest = this.played.keys().next().value;
      if (oldest !== this.currentItem) this.played.delete(oldest);
    }
    this.sinceReport += frames;
    if (this.sinceReport >= sampleRate / 20) this.report();
    return true;
  }
}

registerProcessor("bridge-capture", CaptureProcessor);
registerProcessor("bridge-playback", PlaybackProcessor);
