/**
 * The SDK takes its close codes and retry policies from the server's own
 * table (src/protocol/codes.ts); these check that the disconnects the server
 * starts agree with what the SDK does about them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CloseCode as SdkCloseCode, policyOf as sdkPolicyOf } from '../../sdk/src/protocol.js';
import { CloseCode, Disconnects, NO_CLOSE_FRAME, policyOf } from '../../src/protocol/codes.js';

test('protocol codes - the SDK knows every server close code, plus 1006 for no close frame', () => {
  assert.deepEqual(SdkCloseCode, { ...CloseCode, ABNORMAL: NO_CLOSE_FRAME });
  assert.equal(sdkPolicyOf, policyOf, 'one policy function');
});

test('protocol codes - a disconnect says reconnect exactly when the client policy is not "never"', () => {
  for (const [reason, d] of Object.entries(Disconnects)) {
    assert.ok(Object.values(CloseCode).includes(d.code), `${reason} closes with a listed code`);
    assert.equal(d.reconnect, policyOf(d.code) !== 'never', `reconnect of ${reason}`);
  }
  assert.equal(policyOf(CloseCode.DISCONNECTED), 'never');
  assert.equal(policyOf(CloseCode.TOKEN_EXPIRED), 'refresh-token');
  assert.equal(policyOf(CloseCode.REQUEST_OVERFLOW), 'retry-later');
  assert.equal(policyOf(NO_CLOSE_FRAME), 'retry');
});
