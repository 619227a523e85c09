// distcache package root: re-exports the public pieces that exist so far.
export * from './util/errors.js';
