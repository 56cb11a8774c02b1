// The time as the services read it: epoch milliseconds. Production uses the system clock;
// tests inject one they can move forward instead of sleeping.
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
