import { expect } from 'chai';
import { crc32, crc32Ascii } from '../src/util/crc32.js';
import { hashOf, hashString } from '../src/util/hash.js';
import { crc32 as zlibCrc32 } from 'node:zlib';

describe('util - crc32', () => {
  it('matches the standard check value and zlib', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).to.equal(0xcbf43926);
    expect(crc32Ascii('123456789')).to.equal(0xcbf43926);
    const s = '100000:5:100010:7:99990:3';
    expect(crc32Ascii(s)).to.equal(zlibCrc32(s));
    expect(crc32(new Uint8Array())).to.equal(0);
  });
});

describe('util - state hash', () => {
  it('is stable and sensitive to any change', () => {
    expect(hashOf({ a: 1, b: [1, 2] })).to.equal(hashOf({ a: 1, b: [1, 2] }));
    expect(hashOf({ a: 1, b: [1, 2] })).to.not.equal(hashOf({ a: 1, b: [2, 1] }));
    expect(hashString('')).to.have.length(28);
  });
});
