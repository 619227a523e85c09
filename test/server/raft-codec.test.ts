import { expect } from 'chai';
import { type Message, MessageType, EntryType, makeMessage } from '../../src/raft/index.js';
import { decodeBatch, encodeBatch, encodeBatchHeader, encodeBatchMessage } from '../../src/server/raft-codec.js';
import { loadServices, type PRaftBatch } from '../../src/server/proto.js';
import type { GroupMessage } from '../../src/store/transport.js';

function sample(): GroupMessage[] {
  const full: Message = makeMessage({
    type: MessageType.Snap,
    from: 3,
    to: 1,
    term: 2 ** 40,
    logTerm: 7,
    index: Number.MAX_SAFE_INTEGER,
    commit: 123456,
    reject: true,
    rejectHint: 99,
    entries: [
      { term: 1, index: 2, type: EntryType.Normal, data: Uint8Array.of(1, 2, 3) },
      { term: 1, index: 3, type: EntryType.ConfChange, data: new Uint8Array(0) },
    ],
    context: Uint8Array.of(9, 8),
    snapshot: {
      metadata: { index: 50, term: 4, confState: { voters: [1, 2, 3], learners: [4], votersOutgoing: [1], learnersNext: [], autoLeave: true } },
      offset: 1024,
      totalBytes: 4096,
      data: Buffer.alloc(300, 7),
      done: false,
    },
    tick: 17,
    offset: 5,
  });
  return [
    { groupId: 1, message: makeMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3, commit: 4 }) },
    { groupId: 1024, message: full },
    { groupId: 0, message: makeMessage({ type: MessageType.Heartbeat, from: 1, to: 2, context: Uint8Array.of(2) }) },
  ];
}

describe('server/raft-codec', () => {
  it('round-trips every field of a batch', () => {
    const batch = sample();
    const decoded = decodeBatch(encodeBatch(batch));
    expect(decoded).to.deep.equal(batch.map((b) => ({ groupId: b.groupId, message: { ...b.message, entries: b.message.entries.map((e) => ({ ...e, data: new Uint8Array(e.data) })), ...(b.message.snapshot ? { snapshot: { ...b.message.snapshot, data: new Uint8Array(b.message.snapshot.data) } } : {}) } })));
  });

  it('round-trips an empty batch and is compact for heartbeats', () => {
    expect(decodeBatch(encodeBatch([]))).to.deep.equal([]);
    const hb = encodeBatch([{ groupId: 5, message: makeMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3, commit: 4 }) }]);
    expect(hb.length).to.be.lessThan(20);
  });

  it('writes whole RaftBatch messages that the protobuf decoder reads back field for field', () => {
    const stream = loadServices().raftTransport.service['Stream']!;
    const decode = (b: Buffer): PRaftBatch => stream.requestDeserialize(b) as PRaftBatch;
    const big: GroupMessage = { groupId: 7, message: makeMessage({ type: MessageType.App, from: 1, to: 2, entries: [{ term: 1, index: 1, type: EntryType.Normal, data: Buffer.alloc(300_000, 3) }] }) };
    for (const self of [
      { fromNode: 'node1', fromRaftId: 1, clientAddress: '127.0.0.1:8080', peerAddress: 'proxy.example:7101' },
      { fromNode: 'n-ü', fromRaftId: 2 ** 31, clientAddress: '', peerAddress: '' },
    ]) {
      for (const batch of [sample(), [], [big]]) {
        const m = decode(encodeBatchMessage(encodeBatchHeader(self), batch));
        expect({ from_node: m.from_node, from_raft_id: m.from_raft_id, client_address: m.client_address, peer_address: m.peer_address }).to.deep.equal({
          from_node: self.fromNode,
          from_raft_id: self.fromRaftId,
          client_address: self.clientAddress,
          peer_address: self.peerAddress,
        });
        expect(Buffer.compare(m.payload, encodeBatch(batch))).to.equal(0);
      }
    }
  });

  it('rejects malformed payloads with a DecodeError, never garbage', () => {
    const good = encodeBatch(sample());
    for (let cut = 0; cut < good.length; cut += 7) {
      expect(() => decodeBatch(good.subarray(0, cut)), `cut ${cut}`).to.throw();
    }
    expect(() => decodeBatch(Buffer.from([2, 0]))).to.throw(/version/);
    expect(() => decodeBatch(Buffer.concat([good, Buffer.from([0])]))).to.throw(/trailing/);
  });
});
