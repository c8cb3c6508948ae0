/** The command talks to all emulators or to none: a half-set environment would reach the cloud. */
import { describe, expect, it } from 'vitest';
import { mixedEmulatorsProblem } from '../../cli/context.js';
import { testConfig } from '../fakes.js';

const ALL = {
  STORAGE_EMULATOR_HOST: 'http://127.0.0.1:1',
  FIRESTORE_EMULATOR_HOST: '127.0.0.1:2',
  PUBSUB_EMULATOR_HOST: '127.0.0.1:3',
  VERTEX_AI_EMULATOR_HOST: '127.0.0.1:4',
};

describe('emulator variables', () => {
  it('all four or none pass', () => {
    expect(() => mixedEmulatorsProblem(testConfig(ALL))).not.toThrow();
    expect(() => mixedEmulatorsProblem(testConfig())).not.toThrow();
  });

  it('Pub/Sub left unset would publish a replay to the real topic: refused, naming it', () => {
    const { PUBSUB_EMULATOR_HOST: _, ...rest } = ALL;
    expect(() => mixedEmulatorsProblem(testConfig(rest))).toThrow(
      /PUBSUB_EMULATOR_HOST is not: this command would reach those services in the cloud/,
    );
  });

  it('Firestore left unset is refused with the reason of the local stack without gcloud', () => {
    const { FIRESTORE_EMULATOR_HOST: _, ...rest } = ALL;
    expect(() => mixedEmulatorsProblem(testConfig(rest))).toThrow(/FIRESTORE_EMULATOR_HOST is not/);
  });
});
