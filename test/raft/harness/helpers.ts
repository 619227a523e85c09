// Helpers for Raft unit tests: building logs with given terms, and raw message construction.
import { type Entry, type Message, EntryType, MemoryStorage, MessageType, makeMessage, Raft, type RaftConfig } from '../../../src/raft/index.js';
import { Rng } from '../../../src/util/rng.js';

/** Entries at indexes 1..n with the given terms; data is "t<term>i<index>". */
export function entriesWithTerms(terms: number[], from = 1): Entry[] {
  return terms.map((t, i) => ({ term: t, index: from + i, type: EntryType.Normal, data: new TextEncoder().encode(`t${t}i${from + i}`) }));
}

/** A bootstrapped storage holding a log with the given terms and hard state. */
export function storageWith(voters: number[], terms: number[], term = terms[terms.length - 1] ?? 0, commit = 0, vote = 0): MemoryStorage {
  const s = MemoryStorage.bootstrap(voters);
  s.append(entriesWithTerms(terms));
  s.setHardState({ term, vote, commit });
  return s;
}

/** A bare Raft (no RawNode), for tests that inspect single steps. */
export function newRaft(id: number, voters: number[], storage?: MemoryStorage, extra: Partial<RaftConfig> = {}): Raft {
  return new Raft({ id, storage: storage ?? MemoryStorage.bootstrap(voters), electionTick: 10, heartbeatTick: 1, random: new Rng(id), ...extra });
}

export function msg(m: Partial<Message> & { type: MessageType }): Message {
  return makeMessage(m);
}

export function ofType(msgs: Message[], t: MessageType): Message[] {
  return msgs.filter((m) => m.type === t);
}
