// Writes images/icon.png, the extension's 128x128 icon: a trace waterfall (span bars, one flagged) on a
// rounded square. Drawn here, pixel by pixel, so the icon needs no download and no image tool:
//   node scripts/make_icon.mjs
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const SIZE = 128;
const BACKGROUND = [0x1f, 0x3a, 0x5f];
const SPAN = [0x8f, 0xd3, 0xff];
const FLAGGED = [0xff, 0xb3, 0x47];
// x0, x1, y0, y1 of each span bar, top to bottom, and whether it is the one a rule flagged.
const BARS = [
  [20, 108, 22, 36, false],
  [32, 84, 44, 58, false],
  [44, 72, 66, 80, false],
  [60, 100, 88, 102, true],
];
const RADIUS = 22;

function pixel(x, y) {
  // Outside the rounded square: transparent.
  const cx = Math.min(Math.max(x, RADIUS), SIZE - 1 - RADIUS);
  const cy = Math.min(Math.max(y, RADIUS), SIZE - 1 - RADIUS);
  if ((x - cx) ** 2 + (y - cy) ** 2 > RADIUS ** 2) {
    return [0, 0, 0, 0];
  }
  for (const [x0, x1, y0, y1, flagged] of BARS) {
    if (x >= x0 && x < x1 && y >= y0 && y < y1) {
      return [...(flagged ? FLAGGED : SPAN), 255];
    }
  }
  return [...BACKGROUND, 255];
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) {
    c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) {
    c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

const header = Buffer.alloc(13);
header.writeUInt32BE(SIZE, 0);
header.writeUInt32BE(SIZE, 4);
header[8] = 8; // bits per channel
header[9] = 6; // RGBA
const rows = [];
for (let y = 0; y < SIZE; y++) {
  rows.push(Buffer.from([0])); // no filter
  const row = Buffer.alloc(SIZE * 4);
  for (let x = 0; x < SIZE; x++) {
    Buffer.from(pixel(x, y)).copy(row, x * 4);
  }
  rows.push(row);
}
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', header),
  chunk('IDAT', deflateSync(Buffer.concat(rows), { level: 9 })),
  chunk('IEND', Buffer.alloc(0)),
]);
const out = fileURLToPath(new URL('../images/icon.png', import.meta.url));
writeFileSync(out, png);
console.log(`${out}: ${png.length} bytes`);
