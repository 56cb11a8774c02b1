// Moved to shared/models.ts (channels use it too). This re-export stays only while
// keys/verify.ts imports './models.js'; remove it when that import points at shared/.
export * from '../shared/models.js';
