#!/usr/bin/env node
// tests/face/reference/reference.js — the original face-api networks as softbio's reference.
//
// Runs @vladmandic/face-api 1.7.15 on @tensorflow/tfjs 4.22 with the wasm backend (no
// native code), from packages installed by scripts/fetch_face_reference.sh DIR. Every
// command takes --modules DIR (or the environment variable SOFTBIO_FACE_REFERENCE): the
// folder holding node_modules/. Inputs are decoded pixels, never image files, so softbio
// and the reference see identical pixels (JPEG decoders differ).
//
//   node reference.js decode   --modules DIR IMAGE.jpg OUT.rgb
//        jpeg-js decode (EXIF orientation ignored) -> raw RGB bytes (H x W x 3, row-major);
//        prints {"width", "height"} as JSON.
//
//   node reference.js pipeline --modules DIR --rgb FILE --width W --height H
//                              [--input-size 416] [--score-threshold 0.5] [--dump-dir D] [--time N]
//        detectAllFaces(tiny face detector) -> withFaceLandmarks() -> withAgeAndGender(),
//        on the int32 tensor [H, W, 3] of those pixels. Prints one JSON document:
//        {image: {width, height}, options, versions, faces: [{box: {x, y, width, height},
//         score, landmarks: [[x, y] x 68], aligned_rect: {...}, age, gender,
//         genderProbability}], ms?}.
//        --dump-dir D also writes each network's own input and raw output for this image
//        (see "net" below for what they are): detector_input.npy, detector_output.npy, and
//        per face i: face<i>_landmark68_input.npy, face<i>_landmark68_output.npy,
//        face<i>_age_gender_input.npy, face<i>_age_gender_age.npy,
//        face<i>_age_gender_gender_logits.npy.
//        --time N runs the whole chain N more times and adds the median milliseconds.
//
//   node reference.js net --modules DIR --net tiny_face_detector|landmark68|age_gender
//                         (--input X.npy | --raw X.f32 --shape 1,S,S,3 |
//                          --rgb FILE --width W --height H [--size S]) --out PREFIX
//        Runs one network alone on a given input tensor [1, S, S, 3] (or [S, S, 3]),
//        float32, NHWC. The input is in the pixel domain: what face-api's
//        NetInput.toBatchTensor gives after padding to a square and resizing (values
//        0..255, not yet normalised); the network's first step subtracts its mean RGB and
//        divides by 255 (float32). With --rgb the input is built from an image as face-api
//        builds it (padded to a square: right/bottom for the detector, centred for the
//        others; resized bilinearly to S) and written to PREFIXinput.npy. S must be a
//        multiple of 32 for the detector (416 by default in face-api), 112 for the other
//        two. Writes PREFIX<name>.npy:
//          tiny_face_detector: output [1, S/32, S/32, 25] (5 anchors x (tx, ty, tw, th, to),
//                              before any sigmoid/exp)
//          landmark68:         output [1, 136] (fc outputs: x0, y0, x1, y1, ... relative
//                              to the 112-px input, before the padding correction)
//          age_gender:         age [1] (years), gender_logits [1, 2] (index 0 = male),
//                              gender_softmax [1, 2]
//
//   node reference.js weights --modules DIR MODEL_NAME OUT_DIR
//        Loads MODEL_NAME-weights_manifest.json + shards from face-api's model/ folder
//        with tfjs's own loader (tf.io.weightsLoaderFactory over fs.readFile, as face-api's
//        loadFromDisk does) and writes every decoded tensor as OUT_DIR/<index>.npy plus
//        OUT_DIR/index.json: [{name, shape, dtype, file}] in manifest order.
//        --model-dir DIR reads another folder (a copy of the manifest and shards).
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

function fail(message) {
  process.stderr.write(`reference.js: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------- arguments
function parseArgs(argv) {
  const positional = [];
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const key = a.slice(2);
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      options[key] = argv[++i];
    } else {
      positional.push(a);
    }
  }
  return { positional, options };
}

function intOption(options, key, fallback) {
  if (options[key] === undefined) {
    if (fallback === undefined) fail(`--${key} is required`);
    return fallback;
  }
  const v = Number(options[key]);
  if (!Number.isInteger(v) || v <= 0) fail(`--${key} ${options[key]}: expected a positive integer`);
  return v;
}

// ---------------------------------------------------------------------- packages
function loadPackages(options) {
  const dir = options.modules || process.env.SOFTBIO_FACE_REFERENCE;
  if (!dir) fail('--modules DIR (or SOFTBIO_FACE_REFERENCE) must name the folder that holds node_modules/ '
                 + '(scripts/fetch_face_reference.sh DIR installs it)');
  const base = path.resolve(dir);
  if (!fs.existsSync(path.join(base, 'node_modules'))) fail(`${base} has no node_modules/ (run scripts/fetch_face_reference.sh ${dir})`);
  const req = createRequire(path.join(base, 'package.json'));
  const faceapiPackage = path.dirname(req.resolve('@vladmandic/face-api/package.json'));
  const wasmPackage = path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  return {
    base,
    req,
    faceapiPackage,
    wasmDir: path.join(wasmPackage, 'dist'),
    modelDir: path.join(faceapiPackage, 'model'),
  };
}

// face-api's node-wasm bundle re-exports @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm
// as faceapi.tf. The .wasm files are read from the package itself: setWasmPaths with
// usePlatformFetch = false, because Node's fetch refuses plain file paths.
async function loadFaceApi(pkgs, { nets = true } = {}) {
  const faceapi = pkgs.req(path.join(pkgs.faceapiPackage, 'dist', 'face-api.node-wasm.js'));
  const { tf } = faceapi;
  tf.setWasmPaths(pkgs.wasmDir + path.sep, false);
  if (!(await tf.setBackend('wasm'))) fail('tfjs could not start the wasm backend');
  await tf.ready();
  if (nets) {
    await faceapi.nets.tinyFaceDetector.loadFromDisk(pkgs.modelDir);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(pkgs.modelDir);
    await faceapi.nets.ageGenderNet.loadFromDisk(pkgs.modelDir);
  }
  return { faceapi, tf };
}

function versions(pkgs, faceapi, tf) {
  const read = (name) => JSON.parse(fs.readFileSync(pkgs.req.resolve(`${name}/package.json`))).version;
  return {
    'face-api': faceapi.version || read('@vladmandic/face-api'),
    tfjs: tf.version_core,
    'tfjs-backend-wasm': read('@tensorflow/tfjs-backend-wasm'),
    backend: tf.getBackend(),
    node: process.version,
  };
}

// ---------------------------------------------------------------------- .npy files
function npyDescr(dtype) {
  return { float32: '<f4', int32: '<i4', bool: '|u1' }[dtype];
}

function writeNpy(file, data, shape) {
  let typed = data;
  if (!(typed instanceof Float32Array) && !(typed instanceof Int32Array) && !(typed instanceof Uint8Array)) {
    typed = Float32Array.from(typed);
  }
  const descr = typed instanceof Float32Array ? '<f4' : typed instanceof Int32Array ? '<i4' : '|u1';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

function readNpy(file) {
  const blob = fs.readFileSync(file);
  if (blob.length < 10 || blob.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = blob[6];
  const headerLength = major === 1 ? blob.readUInt16LE(8) : blob.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = blob.toString('latin1', start, start + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) fail(`${file}: malformed .npy header ${header}`);
  if (/'fortran_order':\s*True/.test(header)) fail(`${file}: Fortran-ordered arrays are not supported`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const bytes = blob.subarray(start + headerLength);
  let values;
  if (descr[1] === '<f4') {
    if (bytes.length !== count * 4) fail(`${file}: ${bytes.length} data bytes, shape ${dims} needs ${count * 4}`);
    values = new Float32Array(count);
    Buffer.from(values.buffer).set(bytes.subarray(0, count * 4));
  } else if (descr[1] === '<f8') {
    if (bytes.length !== count * 8) fail(`${file}: ${bytes.length} data bytes, shape ${dims} needs ${count * 8}`);
    const f64 = new Float64Array(count);
    Buffer.from(f64.buffer).set(bytes.subarray(0, count * 8));
    values = Float32Array.from(f64);
  } else if (descr[1] === '|u1') {
    if (bytes.length !== count) fail(`${file}: ${bytes.length} data bytes, shape ${dims} needs ${count}`);
    values = Float32Array.from(bytes.subarray(0, count));
  } else {
    fail(`${file}: dtype ${descr[1]} not supported (float32 '<f4', float64 '<f8' or uint8 '|u1')`);
  }
  return { values, shape: dims };
}

async function tensorValues(t) {
  return { values: await t.data(), shape: t.shape.slice() };
}

async function saveTensor(file, t) {
  const { values, shape } = await tensorValues(t);
  writeNpy(file, values, shape);
}

// ---------------------------------------------------------------------- network runs
const NETS = ['tiny_face_detector', 'landmark68', 'age_gender'];

// One network alone on a pixel-domain float32 tensor [S, S, 3] (already square and at the
// network's size, so NetInput.toBatchTensor leaves it as it is). Returns {name: Tensor}.
function runNetwork(faceapi, tf, net, pixels3d) {
  const input = new faceapi.NetInput([pixels3d]);
  const size = pixels3d.shape[0];
  if (pixels3d.shape[1] !== size || pixels3d.shape[2] !== 3) fail(`network input must be [S, S, 3], got [${pixels3d.shape}]`);
  if (net === 'tiny_face_detector') {
    if (size % 32 !== 0) fail(`detector input size ${size} is not a multiple of 32`);
    return { output: faceapi.nets.tinyFaceDetector.forwardInput(input, size) };
  }
  if (size !== 112) fail(`${net} takes 112 x 112 inputs, got ${size}`);
  if (net === 'landmark68') {
    return { output: faceapi.nets.faceLandmark68Net.runNet(input) };
  }
  if (net === 'age_gender') {
    const { age, gender } = faceapi.nets.ageGenderNet.runNet(input);
    return { age, gender_logits: gender, gender_softmax: tf.softmax(gender) };
  }
  return fail(`--net ${net}: expected one of ${NETS.join(', ')}`);
}

// The pixel-domain input face-api builds from an image tensor: pad to a square (detector:
// right/bottom; the 112-px nets: centred) and resize bilinearly to `size`.
function networkInput(faceapi, tf, image3d, size, centred) {
  return tf.tidy(() => new faceapi.NetInput([image3d]).toBatchTensor(size, centred).squeeze([0]));
}

function readRgb(options, tf) {
  const width = intOption(options, 'width');
  const height = intOption(options, 'height');
  if (!options.rgb) fail('--rgb FILE is required');
  const bytes = fs.readFileSync(options.rgb);
  if (bytes.length !== width * height * 3) {
    fail(`${options.rgb}: ${bytes.length} bytes, ${width} x ${height} RGB needs ${width * height * 3}`);
  }
  return tf.tensor3d(Int32Array.from(bytes), [height, width, 3], 'int32');
}

function boxJson(box) {
  return { x: box.x, y: box.y, width: box.width, height: box.height };
}

async function pipeline(options) {
  const pkgs = loadPackages(options);
  const { faceapi, tf } = await loadFaceApi(pkgs);
  const inputSize = intOption(options, 'input-size', 416);
  const scoreThreshold = options['score-threshold'] === undefined ? 0.5 : Number(options['score-threshold']);
  const image = readRgb(options, tf);
  const detectorOptions = new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold });
  const run = () => faceapi.detectAllFaces(image, detectorOptions).withFaceLandmarks().withAgeAndGender();
  const results = await run();
  const faces = results.map((r) => ({
    box: boxJson(r.detection.box),
    score: r.detection.score,
    landmarks: r.landmarks.positions.map((p) => [p.x, p.y]),
    aligned_rect: boxJson(r.alignedRect.box),
    age: r.age,
    gender: r.gender,
    genderProbability: r.genderProbability,
  }));
  const doc = {
    image: { width: image.shape[1], height: image.shape[0] },
    options: { detector: 'tiny_face_detector', inputSize, scoreThreshold, landmarks: 'face_landmark_68', attributes: 'age_gender' },
    versions: versions(pkgs, faceapi, tf),
    faces,
  };
  if (options['dump-dir']) await dumpNetworks(faceapi, tf, image, results, inputSize, options['dump-dir'], doc);
  if (options.time) {
    const n = intOption(options, 'time');
    const ms = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await run(); // eslint-disable-line no-await-in-loop
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((a, b) => a - b);
    doc.ms = { runs: n, median: ms[Math.floor(n / 2)], min: ms[0], max: ms[n - 1], note: 'decode excluded; after one warm-up run' };
  }
  process.stdout.write(`${JSON.stringify(doc)}\n`);
}

// Each network's own input and raw output for the faces of one pipeline run. The crops
// are made as the chain makes them: extractFaceTensors (clip, floor, slice) on the
// detection box for the landmarks and on the aligned rect for age/gender.
async function dumpNetworks(faceapi, tf, image, results, inputSize, dir, doc) {
  fs.mkdirSync(dir, { recursive: true });
  const files = [];
  const save = async (name, t) => { await saveTensor(path.join(dir, name), t); files.push(name); };
  const detIn = networkInput(faceapi, tf, image, inputSize, false);
  await save('detector_input.npy', detIn.expandDims(0));
  await save('detector_output.npy', runNetwork(faceapi, tf, 'tiny_face_detector', detIn).output);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    const [landmarkCrop] = await faceapi.extractFaceTensors(image, [r.detection]); // eslint-disable-line no-await-in-loop
    const lmIn = networkInput(faceapi, tf, landmarkCrop, 112, true);
    await save(`face${i}_landmark68_input.npy`, lmIn.expandDims(0)); // eslint-disable-line no-await-in-loop
    await save(`face${i}_landmark68_output.npy`, runNetwork(faceapi, tf, 'landmark68', lmIn).output); // eslint-disable-line no-await-in-loop
    const [ageCrop] = await faceapi.extractFaceTensors(image, [r.alignedRect]); // eslint-disable-line no-await-in-loop
    const agIn = networkInput(faceapi, tf, ageCrop, 112, true);
    await save(`face${i}_age_gender_input.npy`, agIn.expandDims(0)); // eslint-disable-line no-await-in-loop
    const ag = runNetwork(faceapi, tf, 'age_gender', agIn);
    await save(`face${i}_age_gender_age.npy`, ag.age); // eslint-disable-line no-await-in-loop
    await save(`face${i}_age_gender_gender_logits.npy`, ag.gender_logits); // eslint-disable-line no-await-in-loop
    // The dumped outputs must be what the chain itself computed on this face.
    const age = (await ag.age.data())[0]; // eslint-disable-line no-await-in-loop
    if (age !== r.age) fail(`face ${i}: age ${age} from the dumped input, ${r.age} in the chain`);
  }
  doc.dumped = files;
}

async function netCommand(options) {
  const pkgs = loadPackages(options);
  const { faceapi, tf } = await loadFaceApi(pkgs);
  const net = options.net;
  if (!NETS.includes(net)) fail(`--net ${net}: expected one of ${NETS.join(', ')}`);
  if (!options.out) fail('--out PREFIX is required');
  let input;
  if (options.rgb) {
    // The input face-api would build from these pixels: the detector pads right/bottom,
    // the 112-px nets pad centred; then a bilinear resize to --size (default 416 / 112).
    const image = readRgb(options, tf);
    const size = intOption(options, 'size', net === 'tiny_face_detector' ? 416 : 112);
    const built = networkInput(faceapi, tf, image, size, net !== 'tiny_face_detector');
    input = { values: await built.data(), shape: [1, size, size, 3] };
    writeNpy(`${options.out}input.npy`, input.values, input.shape);
  } else if (options.input) {
    input = readNpy(options.input);
  } else if (options.raw) {
    if (!options.shape) fail('--raw needs --shape 1,S,S,3');
    const shape = options.shape.split(',').map(Number);
    const bytes = fs.readFileSync(options.raw);
    const count = shape.reduce((a, b) => a * b, 1);
    if (bytes.length !== count * 4) fail(`${options.raw}: ${bytes.length} bytes, shape ${shape} float32 needs ${count * 4}`);
    const values = new Float32Array(count);
    Buffer.from(values.buffer).set(bytes);
    input = { values, shape };
  } else {
    fail('--input X.npy, --raw X.f32 --shape 1,S,S,3, or --rgb FILE --width W --height H [--size S] is required');
  }
  let { shape } = input;
  if (shape.length === 4) {
    if (shape[0] !== 1) fail(`input batch ${shape[0]}: one image at a time`);
    shape = shape.slice(1);
  }
  if (shape.length !== 3) fail(`input shape [${input.shape}]: expected [1, S, S, 3] or [S, S, 3]`);
  const pixels = tf.tensor3d(input.values, shape, 'float32');
  const outputs = runNetwork(faceapi, tf, net, pixels);
  const written = [];
  for (const [name, t] of Object.entries(outputs)) {
    const file = `${options.out}${name}.npy`;
    await saveTensor(file, t); // eslint-disable-line no-await-in-loop
    written.push({ name, file, shape: t.shape });
  }
  process.stdout.write(`${JSON.stringify({ net, input_shape: input.shape, outputs: written, versions: versions(pkgs, faceapi, tf) })}\n`);
}

async function weightsCommand(positional, options) {
  const [modelName, outDir] = positional;
  if (!modelName || !outDir) fail('usage: reference.js weights --modules DIR MODEL_NAME OUT_DIR');
  const pkgs = loadPackages(options);
  const { tf } = await loadFaceApi(pkgs, { nets: false });
  const modelDir = options['model-dir'] ? path.resolve(options['model-dir']) : pkgs.modelDir;
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${modelName}-weights_manifest.json`), 'utf8'));
  const fetchShards = (paths) => Promise.all(paths.map((p) => fs.promises.readFile(p).then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))));
  const weightMap = await tf.io.weightsLoaderFactory(fetchShards)(manifest, modelDir + path.sep);
  fs.mkdirSync(outDir, { recursive: true });
  const index = [];
  let i = 0;
  for (const group of manifest) {
    for (const entry of group.weights) {
      const t = weightMap[entry.name];
      const file = `${String(i).padStart(3, '0')}.npy`;
      await saveTensor(path.join(outDir, file), t); // eslint-disable-line no-await-in-loop
      index.push({ name: entry.name, shape: t.shape, dtype: t.dtype, file });
      i++;
    }
  }
  fs.writeFileSync(path.join(outDir, 'index.json'), `${JSON.stringify(index, null, 1)}\n`);
  process.stdout.write(`${JSON.stringify({ model: modelName, tensors: index.length, out: outDir })}\n`);
}

function decodeCommand(positional, options) {
  const [image, out] = positional;
  if (!image || !out) fail('usage: reference.js decode --modules DIR IMAGE.jpg OUT.rgb');
  const pkgs = loadPackages(options);
  const jpeg = pkgs.req('jpeg-js');
  const decoded = jpeg.decode(fs.readFileSync(image), { formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  const { width, height } = decoded;
  if (decoded.data.length !== width * height * 3) fail(`${image}: decoder returned ${decoded.data.length} bytes for ${width} x ${height}`);
  fs.writeFileSync(out, decoded.data);
  process.stdout.write(`${JSON.stringify({ width, height })}\n`);
}

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  const { positional, options } = parseArgs(rest);
  if (command === 'pipeline') return pipeline(options);
  if (command === 'net') return netCommand(options);
  if (command === 'weights') return weightsCommand(positional, options);
  if (command === 'decode') return decodeCommand(positional, options);
  return fail('usage: reference.js pipeline|net|weights|decode ... (see the comment at the top of the file)');
}

main().catch((e) => {
  process.stderr.write(`reference.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
