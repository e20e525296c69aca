import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidWorkloadApiAddressError } from '../errors/errors.ts';
import {
  formatWorkloadApiAddress,
  grpcTargetForAddress,
  parseWorkloadApiAddress,
} from './workload_address.ts';

describe('parseWorkloadApiAddress()', () => {
  test('accepts a unix socket URI with an absolute path', () => {
    assert.deepEqual(parseWorkloadApiAddress('unix:///tmp/spire-agent/public/api.sock'), {
      kind: 'unix',
      path: '/tmp/spire-agent/public/api.sock',
    });
  });

  test('accepts the authority-less single-slash unix form', () => {
    assert.deepEqual(parseWorkloadApiAddress('unix:/run/agent.sock'), {
      kind: 'unix',
      path: '/run/agent.sock',
    });
  });

  test('decodes percent-escapes in a unix path', () => {
    assert.deepEqual(parseWorkloadApiAddress('unix:///tmp/my%20dir/api.sock'), {
      kind: 'unix',
      path: '/tmp/my dir/api.sock',
    });
  });

  test('accepts the scheme in any case', () => {
    assert.equal(parseWorkloadApiAddress('UNIX:///a.sock').kind, 'unix');
  });

  test('accepts tcp with an IPv4 literal and a port', () => {
    assert.deepEqual(parseWorkloadApiAddress('tcp://127.0.0.1:8000'), {
      kind: 'tcp',
      host: '127.0.0.1',
      port: 8000,
    });
  });

  test('accepts tcp with a bracketed IPv6 literal and a port', () => {
    assert.deepEqual(parseWorkloadApiAddress('tcp://[::1]:8000'), {
      kind: 'tcp',
      host: '::1',
      port: 8000,
    });
  });

  const rejected: [string, string, RegExp][] = [
    ['empty', '', /empty/],
    ['no scheme', '/tmp/agent.sock', /scheme/],
    ['an unknown scheme', 'http://127.0.0.1:80', /scheme "http"/],
    ['a unix authority', 'unix://host/tmp/agent.sock', /authority/],
    ['unix userinfo', 'unix://user@/tmp/agent.sock', /userinfo/],
    ['a unix URI without a path', 'unix://', /path is missing/],
    ['an opaque unix URI', 'unix:agent.sock', /absolute/],
    ['a unix directory path', 'unix:///tmp/', /directory/],
    ['a unix query', 'unix:///tmp/agent.sock?x=1', /query/],
    ['a unix fragment', 'unix:///tmp/agent.sock#frag', /fragment/],
    ['a bad percent-escape', 'unix:///tmp/%zz.sock', /percent-escape/],
    ['an encoded NUL', 'unix:///tmp/a%00.sock', /NUL/],
    ['a space', 'unix:///tmp/a b.sock', /characters/],
    ['a tcp path', 'tcp://127.0.0.1:8000/foo', /path is not allowed/],
    ['a tcp trailing slash', 'tcp://127.0.0.1:8000/', /path is not allowed/],
    ['a tcp query', 'tcp://127.0.0.1:8000?x', /query/],
    ['a tcp fragment', 'tcp://127.0.0.1:8000#x', /fragment/],
    ['tcp userinfo', 'tcp://u:p@127.0.0.1:8000', /userinfo/],
    ['a tcp host name', 'tcp://localhost:8000', /IP address/],
    ['a tcp IPv4 without port', 'tcp://127.0.0.1', /port is missing/],
    ['a tcp empty port', 'tcp://127.0.0.1:', /port is missing/],
    ['a tcp IPv6 without port', 'tcp://[::1]', /port is missing/],
    ['an unbracketed IPv6', 'tcp://::1:8000', /IP address/],
    ['an IPv6 zone', 'tcp://[fe80::1%25eth0]:8000', /IPv6/],
    ['a non-numeric port', 'tcp://127.0.0.1:http', /not a number/],
    ['port zero', 'tcp://127.0.0.1:0', /out of range/],
    ['a port above 65535', 'tcp://127.0.0.1:65536', /out of range/],
    ['an opaque tcp URI', 'tcp:127.0.0.1:8000', /tcp:\/\//],
    ['a leading-zero IPv4', 'tcp://127.000.0.1:8000', /IP address/],
    ['an empty tcp host', 'tcp://:8000', /host is missing/],
  ];
  for (const [what, value, message] of rejected) {
    test(`rejects ${what}`, () => {
      assert.throws(
        () => parseWorkloadApiAddress(value),
        (err: unknown) => {
          assert.ok(err instanceof InvalidWorkloadApiAddressError);
          assert.ok(!err.message.includes('\n'), 'a one-line message');
          assert.equal(err.code, 'ERR_CONFIG_INVALID');
          assert.match(err.message, message);
          assert.ok(err.message.includes(`"${value}"`), 'the message quotes the value');
          return true;
        },
      );
    });
  }
});

describe('grpcTargetForAddress()', () => {
  test('gives unix:<path> for a unix socket', () => {
    assert.equal(
      grpcTargetForAddress(parseWorkloadApiAddress('unix:///tmp/a.sock')),
      'unix:/tmp/a.sock',
    );
  });

  test('uses the DNS-free ip resolvers for tcp', () => {
    assert.equal(
      grpcTargetForAddress(parseWorkloadApiAddress('tcp://10.0.0.1:81')),
      'ipv4:10.0.0.1:81',
    );
    assert.equal(grpcTargetForAddress(parseWorkloadApiAddress('tcp://[::1]:81')), 'ipv6:[::1]:81');
  });
});

describe('formatWorkloadApiAddress()', () => {
  test('round-trips canonical addresses', () => {
    for (const value of ['unix:///tmp/a.sock', 'tcp://10.0.0.1:81', 'tcp://[::1]:81']) {
      assert.equal(formatWorkloadApiAddress(parseWorkloadApiAddress(value)), value);
    }
  });
});
