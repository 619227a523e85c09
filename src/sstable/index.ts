// Public surface of the SSTable format package. Byte layout: ./FORMAT.md.
export { TableBuilder, bytewiseSeparator, bytewiseSuccessor, DEFAULT_BLOCK_SIZE, DEFAULT_RESTART_INTERVAL, DEFAULT_BLOOM_BITS_PER_KEY } from './table-builder.js';
export type { TableBuilderOptions, FinishResult } from './table-builder.js';
export { TableReader } from './table-reader.js';
export type { TableReaderOptions } from './table-reader.js';
export { TableIterator } from './table-iterator.js';
export { Block, BlockIterator, bytewiseCompare } from './block.js';
export type { Compare } from './block.js';
export { BlockBuilder } from './block-builder.js';
export { BlockCache } from './block-cache.js';
export { TableCache } from './table-cache.js';
export type { TableCacheOptions } from './table-cache.js';
export type { TableProperties } from './properties.js';
export { xxh32, bloomHash, bloomK, bloomMayContain, bloomTheoreticalFpRate, BloomBuilder, BLOOM_HASH_SEED } from './bloom.js';
export { CompressionType, FORMAT_VERSION, MAGIC, FOOTER_SIZE, BLOCK_TRAILER_SIZE } from './format.js';
export type { BlockHandle } from './format.js';
