import { expect } from 'chai';
import { Network } from './harness/network.js';

describe('raft smoke', () => {
  it('elects and replicates', () => {
    const net = new Network([1, 2, 3]);
    const l = net.electLeader();
    net.propose(l, 'a');
    net.propose(l, 'b');
    for (const id of [1, 2, 3]) expect(net.appliedStrings(id)).to.deep.equal(['a', 'b']);
  });
});
