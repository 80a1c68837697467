// The page of `cliffhmr serve`: a photo goes to /v1/predict; its pictures, meshes and files come
// back from /v1/results as blobs (fetched with the token, when the server asks for one).
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

const $ = (id) => document.getElementById(id);
const BACKGROUND = 0x20242a;
let blobUrls = [];

function setStatus(text, state) {
  $('status').textContent = text;
  $('status').classList.toggle('error', state === 'error');
  document.body.dataset.state = state;
}

async function api(path, options = {}) {
  const token = $('token').value;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error; } catch { /* not JSON: keep the status text */ }
    throw new Error(`${response.status}: ${message}`);
  }
  return response;
}

async function blobUrl(path) {
  const url = URL.createObjectURL(await (await api(path)).blob());
  blobUrls.push(url);
  return url;
}

// One renderer for the page's life; each answer replaces the meshes in it.
const viewer = { scene: new THREE.Scene(), group: new THREE.Group() };

function startViewer() {
  const box = $('viewer');
  viewer.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  viewer.renderer.setPixelRatio(window.devicePixelRatio);
  box.appendChild(viewer.renderer.domElement);
  viewer.scene.background = new THREE.Color(BACKGROUND);
  viewer.scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 2.0));
  const light = new THREE.DirectionalLight(0xffffff, 2.0);
  light.position.set(1, 2, 3);
  viewer.scene.add(light, viewer.group);
  viewer.camera = new THREE.PerspectiveCamera(40, 1, 0.01, 100);
  viewer.controls = new OrbitControls(viewer.camera, viewer.renderer.domElement);
  viewer.renderer.setAnimationLoop(() => {
    const { clientWidth: w, clientHeight: h } = box;
    if (viewer.renderer.domElement.width !== Math.floor(w * window.devicePixelRatio)) {
      viewer.renderer.setSize(w, h);
      viewer.camera.aspect = w / h;
      viewer.camera.updateProjectionMatrix();
    }
    viewer.controls.update();
    viewer.renderer.render(viewer.scene, viewer.camera);
  });
}

async function showMeshes(paths) {
  if (!viewer.renderer) return;
  const loader = new GLTFLoader();
  viewer.group.clear();
  for (const path of paths) {
    const data = await (await api(path)).arrayBuffer();
    const gltf = await loader.parseAsync(data, '');
    viewer.group.add(gltf.scene);
  }
  // Look at the people from the photo's camera side, far enough back to see them all.
  const bounds = new THREE.Box3().setFromObject(viewer.group);
  const centre = bounds.getCenter(new THREE.Vector3());
  const size = bounds.getSize(new THREE.Vector3()).length() || 1;
  viewer.camera.position.copy(centre).add(new THREE.Vector3(0, 0, 1.6 * size));
  viewer.controls.target.copy(centre);
  viewer.camera.near = size / 100;
  viewer.camera.far = size * 100;
  viewer.camera.updateProjectionMatrix();
}

function showPeople(answer) {
  const rows = answer.people.map((p, i) => {
    const row = document.createElement('tr');
    for (const text of [i, p.distance_m.toFixed(2), p.quality === null ? '-' : p.quality.toFixed(2), p.flags.join(', ') || '-']) {
      row.appendChild(document.createElement('td')).textContent = text;
    }
    return row;
  });
  $('people').tBodies[0].replaceChildren(...rows);
}

async function showDownloads(answer) {
  const links = [];
  for (const [name, path] of Object.entries(answer.files)) {
    const a = document.createElement('a');
    a.href = await blobUrl(path);
    a.download = name;
    a.textContent = name;
    links.push(a);
  }
  $('downloads').replaceChildren('Download: ', ...links);
}

async function predict(file) {
  blobUrls.forEach((url) => URL.revokeObjectURL(url));
  blobUrls = [];
  setStatus(`${file.name}: finding people and fitting their bodies...`, 'busy');
  try {
    const form = new FormData();
    form.append('file', file);
    const answer = await (await api('/v1/predict', { method: 'POST', body: form })).json();
    $('results').hidden = false;
    $('overlay').src = await blobUrl(answer.files['result_overlay.png']);
    $('side').src = await blobUrl(answer.files['result_side.png']);
    showPeople(answer);
    await showDownloads(answer);
    await showMeshes(Object.keys(answer.files).filter((n) => n.endsWith('.glb')).map((n) => answer.files[n]));
    const n = answer.people.length;
    setStatus(`${file.name}: ${n} ${n === 1 ? 'person' : 'people'} (${answer.method}, ${answer.body_model})`, 'ready');
  } catch (error) {
    setStatus(`${file.name}: ${error.message}`, 'error');
  }
}

const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer.files.length) predict(e.dataTransfer.files[0]);
});
$('file').addEventListener('change', () => { if ($('file').files.length) predict($('file').files[0]); });
$('token').value = sessionStorage.getItem('cliffhmr-token') || '';
$('token').addEventListener('change', () => sessionStorage.setItem('cliffhmr-token', $('token').value));
fetch('/v1/health').then((r) => r.json()).then((health) => { $('token-row').hidden = !health.token_required; });
try {
  startViewer();
} catch (error) { // no WebGL here: the pictures and downloads still work
  viewer.renderer = null;
  $('viewer').textContent = `No 3D viewer in this browser (${error.message})`;
}
