export type { CheckpointBackend } from './contract.js';
