// Moved to shared/cidr.ts (http/client-ip.ts uses it too). This re-export stays only while
// keys/verify.ts imports './cidr.js'; remove it when that import points at shared/.
export * from '../shared/cidr.js';
