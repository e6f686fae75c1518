import { expect } from 'chai';
import { ShardMap, fnv1a32, preferenceOrder } from '../src/index.js';
import { placement } from '../src/cluster.js';

describe('actors - shard placement', () => {
  it('actors - fnv1a32 matches the published FNV-1a 32-bit vectors over UTF-8 bytes', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    // Non-ASCII ids hash their UTF-8 bytes: 'é' is C3 A9, '😀' is F0 9F 98 80.
    const bytes = (b: number[]): number => b.reduce((h, x) => Math.imul(h ^ x, 0x01000193) >>> 0, 0x811c9dc5);
    expect(fnv1a32('é')).to.equal(bytes([0xc3, 0xa9]));
    expect(fnv1a32('a😀')).to.equal(bytes([0x61, 0xf0, 0x9f, 0x98, 0x80]));
  });

  it('actors - shard = fnv1a32(id) mod N per kind, stable (pinned values)', () => {
    const m = new ShardMap({ account: 64, book: 16 });
    expect(m.shardOf('account/acc-42').n).to.equal(fnv1a32('acc-42') % 64);
    expect(m.shardOf('book/BTC-USD').n).to.equal(fnv1a32('BTC-USD') % 16);
    // Pinned: a change here moves every entity of a running cluster.
    expect(['a0', 'a1', 'acc-42', 'BTC-USD'].map((id) => fnv1a32(id))).to.deep.equal([455390996, 472168615, 0xa2257ad3, 1995245873]);
    expect(m.shardOf('account/x').key).to.match(/^account\.\d+$/);
    expect(m.byKey('account.7')!.scope).to.equal('account#7');
    expect(m.count('other')).to.equal(64);
  });

  it('actors - placement spreads shards evenly and a leave moves only the leaver’s shards', () => {
    const keys = Array.from({ length: 64 }, (_, i) => `account.${i}`);
    const three = placement(['n1', 'n2', 'n3'], keys);
    const count = new Map<string, number>();
    for (const n of three.values()) count.set(n, (count.get(n) ?? 0) + 1);
    for (const c of count.values()) expect(c).to.be.within(20, 22);
    const two = placement(['n1', 'n3'], keys);
    let moved = 0;
    for (const k of keys) if (three.get(k) !== two.get(k)) moved++;
    expect(moved).to.be.at.most(count.get('n2')! + 2);
    expect(preferenceOrder(['n2', 'n1', 'n3'], 'account.1')).to.deep.equal(preferenceOrder(['n3', 'n1', 'n2'], 'account.1'));
  });
});
