#!/usr/bin/env node
// ort_bench.js - the ONNX Runtime peer: the exported CLIP towers under onnxruntime-node, timed warm.
//
//   node bench/peers/ort_bench.js INPUTS.json ONNX_DIR --threads N [--repeats R]
//        [--int8] [--check-against DIR] [--json OUT.json] [--cases a,b]
//
// ONNX_DIR holds image.onnx and text.onnx (export_onnx.py); with --int8 the dynamically
// quantized image_int8.onnx and text_int8.onnx (quantize_onnx.py). Sessions use the CPU execution
// provider with intraOpNumThreads = N, interOpNumThreads = 1, sequential execution and all
// graph optimizations. Inputs are the same as the other peers': the preprocessed tensors
// (float32 [3, S, S] .npy files) and the token ids of INPUTS.json (bench/prepare.py).
// --check-against DIR compares the L2-normalized outputs with DIR/clipc_{image,text}.npy
// and, when present, DIR/torch_{image,text}.npy ([8, D] images; [10, D] texts: short, long,
// batch) and exits 1 above 1e-4 before timing. An int8 graph cannot match to 1e-4: its check
// is the cosine of each embedding to the fp32 reference's, printed (worst and mean per
// tower), and it exits 1 below 0.99 (a broken graph gives ~0; ORT's own quantize_dynamic
// gives ~0.9999 on images). Each case: 3 untimed runs, then R timed
// ones; the median is the number compared, with the process's CPU time per wall time
// (cores busy) as a check of the thread setting.
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const TOLERANCE = 1e-4;
const INT8_MIN_COSINE = 0.99;

function usage(msg) {
  process.stderr.write(`ort_bench: error: ${msg}\n` +
    'usage: node ort_bench.js INPUTS.json ONNX_DIR --threads N [--repeats R] [--int8] ' +
    '[--check-against DIR] [--json OUT] [--cases a,b]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { positional: [], threads: 1, repeats: 10, check: null, json: null, cases: [], int8: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    if (a === '--threads') args.threads = parseInt(value(), 10);
    else if (a === '--repeats') args.repeats = parseInt(value(), 10);
    else if (a === '--check-against') args.check = value();
    else if (a === '--int8') args.int8 = true;
    else if (a === '--json') args.json = value();
    else if (a === '--cases') args.cases = value().split(',').filter((c) => c);
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else args.positional.push(a);
  }
  if (args.positional.length !== 2) usage('need INPUTS.json and ONNX_DIR');
  if (!(args.threads >= 1) || !(args.repeats >= 1)) usage('--threads and --repeats must be >= 1');
  return args;
}

// A float32 little-endian C-order .npy file -> { shape, data: Float32Array }.
function readNpyF32(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new Error(`${file}: expected little-endian float32 in C order, header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return { shape, data };
}

function idsTensor(rows) {
  const data = BigInt64Array.from(rows.flat().map((v) => BigInt(v)));
  return new ort.Tensor('int64', data, [rows.length, rows[0].length]);
}

function pixelsTensor(arrays) {
  const first = arrays[0].shape;
  const per = arrays[0].data.length;
  const data = new Float32Array(per * arrays.length);
  arrays.forEach((a, k) => data.set(a.data, k * per));
  return new ort.Tensor('float32', data, [arrays.length, ...first]);
}

// Max |a - b| over rows after L2-normalizing each row; a, b Float32Array [n, d].
function maxNormalizedDiff(a, b, d) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let r = 0; r < a.length / d; r++) {
    let na = 0, nb = 0;
    for (let j = 0; j < d; j++) { na += a[r * d + j] ** 2; nb += b[r * d + j] ** 2; }
    na = Math.sqrt(na); nb = Math.sqrt(nb);
    for (let j = 0; j < d; j++) worst = Math.max(worst, Math.abs(a[r * d + j] / na - b[r * d + j] / nb));
  }
  return worst;
}

// Cosine of each row of a with the same row of b ([n, d]): { min, mean }.
function rowCosines(a, b, d) {
  if (a.length !== b.length) return { min: -Infinity, mean: -Infinity };
  let min = Infinity, sum = 0;
  const rows = a.length / d;
  for (let r = 0; r < rows; r++) {
    let dot = 0, na = 0, nb = 0;
    for (let j = 0; j < d; j++) {
      const x = a[r * d + j], y = b[r * d + j];
      dot += x * y; na += x * x; nb += y * y;
    }
    const c = dot / Math.sqrt(na * nb);
    min = Math.min(min, c); sum += c;
  }
  return { min, mean: sum / rows };
}

function concat(parts) {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function timeCase(run, repeats, warmup = 3) {
  for (let i = 0; i < warmup; i++) await run();
  const times = [];
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    await run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuPerWall = (cpu.user + cpu.system) / 1e3 / (Number(process.hrtime.bigint() - wall0) / 1e6);
  const sorted = [...times].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const sd = times.length > 1
    ? Math.sqrt(times.reduce((a, t) => a + (t - mean) ** 2, 0) / (times.length - 1)) : 0;
  return { median_ms: median, mean_ms: mean, sd_ms: sd, runs: times.length, cpu_per_wall: cpuPerWall };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const [inputsPath, onnxDir] = args.positional;
  const inputs = JSON.parse(fs.readFileSync(inputsPath, 'utf8'));
  const options = {
    executionProviders: ['cpu'],
    intraOpNumThreads: args.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  const suffix = args.int8 ? '_int8' : '';
  const imageSession = await ort.InferenceSession.create(path.join(onnxDir, `image${suffix}.onnx`), options);
  const textSession = await ort.InferenceSession.create(path.join(onnxDir, `text${suffix}.onnx`), options);

  const arrays = inputs.arrays.map(readNpyF32);
  const pixels1 = pixelsTensor(arrays.slice(0, 1));
  const pixels8 = pixelsTensor(arrays);
  const ids = {
    short: idsTensor([inputs.ids.short]), long: idsTensor([inputs.ids.long]), batch: idsTensor(inputs.ids.batch),
  };
  const image = async (t) => (await imageSession.run({ pixel_values: t })).image_embeds.data;
  const text = async (t) => (await textSession.run({ input_ids: t })).text_embeds.data;

  const result = {
    peer: args.int8 ? 'ONNX Runtime int8' : 'ONNX Runtime', version: ort.env.versions.node, threads: args.threads,
    graphs: args.int8 ? 'dynamic int8 (quantize_onnx.py)' : 'fp32',
    provider: 'CPUExecutionProvider', cases: {}, check: {},
  };
  if (args.check) {
    const ours = {
      image: await image(pixels8),
      text: concat([await text(ids.short), await text(ids.long), await text(ids.batch)]),
    };
    for (const kind of ['image', 'text']) {
      for (const who of ['clipc', 'torch']) {
        const file = path.join(args.check, `${who}_${kind}.npy`);
        if (!fs.existsSync(file)) {
          if (who === 'clipc') throw new Error(`${file} is missing`);
          continue;
        }
        const ref = readNpyF32(file);
        const name = `${who === 'clipc' ? 'clip.c' : 'PyTorch'} ${kind}`;
        if (args.int8) {
          const cos = rowCosines(ours[kind], ref.data, ref.shape[1]);
          result.check[`cosine to ${name} (min)`] = cos.min;
          result.check[`cosine to ${name} (mean)`] = cos.mean;
          process.stderr.write(`ort int8: ${kind} embeddings vs ${name.split(' ')[0]} fp32: cosine min ` +
            `${cos.min.toFixed(6)}, mean ${cos.mean.toFixed(6)}\n`);
          if (!(cos.min >= INT8_MIN_COSINE)) {
            process.stderr.write(`ort_bench: error: int8 ${kind} cosine to ${name} below ${INT8_MIN_COSINE}\n`);
            process.exit(1);
          }
          continue;
        }
        const diff = maxNormalizedDiff(ours[kind], ref.data, ref.shape[1]);
        result.check[name] = diff;
        process.stderr.write(`ort: ${kind} embeddings vs ${name.split(' ')[0]}: max |diff| ` +
          `${diff.toExponential(2)} (normalized)\n`);
        if (!(diff <= TOLERANCE)) {
          process.stderr.write(`ort_bench: error: differs from ${name} by more than ${TOLERANCE}\n`);
          process.exit(1);
        }
      }
    }
  }

  const cases = {
    image: () => image(pixels1),
    text_short: () => text(ids.short),
    text_long: () => text(ids.long),
    image_batch8: () => image(pixels8),
    text_batch8: () => text(ids.batch),
  };
  for (const [name, run] of Object.entries(cases)) {
    if (args.cases.length && !args.cases.includes(name)) continue;
    result.cases[name] = await timeCase(run, args.repeats);
    process.stderr.write(`ort${suffix} -t ${args.threads} ${name.padEnd(13)} ` +
      `${result.cases[name].median_ms.toFixed(2).padStart(8)} ms (median of ${args.repeats}, ` +
      `${result.cases[name].cpu_per_wall.toFixed(2)} cores busy)\n`);
  }
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 1));
}

main().catch((e) => { process.stderr.write(`ort_bench: error: ${e.message}\n`); process.exit(1); });
