export { marketDataMachine, l2Snapshot, bbo, type MdState, type MdSnapshot, type CandleSlot, type OpenCandle } from './machine.js';
export { LocalBook, type LocalBookResult } from './localbook.js';
export { Levels } from './levels.js';
export { checksumString, checksumOf, checksumOfLevels } from './checksum.js';
