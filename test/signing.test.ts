// Reviewed means signed (#27): `sign`, and `verify`, `apply`, `rollback`, `status` and `export ansible` judging
// signatures against an allowed_signers file, with OpenSSH's real ssh-keygen and throwaway keys, on throwaway
// --root trees. Every refusal is checked to exit 2 and to leave the tree exactly as it was.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cli, requireTool, tempDir } from './helpers.js';

const RECORD = 'var/lib/qemu-harden/.installed';
const UNIT = 'root/etc/systemd/system/qemu-server.service';
const TRUST = 'etc/qemu-harden/allowed_signers';

function treeHash(dir: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) visit(rel ? `${rel}/${e}` : e);
    else if (st.isFile()) h.update(readFileSync(p));
  };
  visit('');
  return h.digest('hex');
}

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** The bundle's manifest written again for its files as they are: what whoever edits a bundle on purpose does. */
function recomputeManifest(bundle: string): void {
  const files = readdirSync(bundle, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(bundle.length + 1))
    .filter((f) => f !== 'MANIFEST.sha256' && !f.startsWith('signatures/'))
    .sort();
  writeFileSync(
    join(bundle, 'MANIFEST.sha256'),
    files.map((f) => `${sha(readFileSync(join(bundle, f)))}  ${f}\n`).join(''),
  );
}

describe('signed bundles, judged by ssh-keygen', () => {
  const dir = tempDir({ after }, 'qh-signing-');
  const keys: Record<string, { key: string; pub: string; fingerprint: string; file: string }> = {};
  let template = '';
  /** Another bundle, of other guests, for a second install. */
  let template2 = '';
  /** alice and bob, each allowed in namespace qemu-harden as a principal of their own. */
  let allowed = '';

  const keygen = (...args: string[]) => execFileSync('ssh-keygen', args, { encoding: 'utf8', stdio: 'pipe' });

  before(async () => {
    requireTool('ssh-keygen', 'openssh-client');
    requireTool('systemd-sysusers', 'systemd');
    for (const name of ['alice', 'bob', 'eve']) {
      const key = join(dir, name);
      keygen('-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key);
      const fingerprint = keygen('-l', '-f', `${key}.pub`).split(' ')[1]!;
      keys[name] = {
        key,
        pub: readFileSync(`${key}.pub`, 'utf8').split(' ').slice(0, 2).join(' '),
        fingerprint,
        file: `signatures/${fingerprint.slice(7).replaceAll('+', '-').replaceAll('/', '_')}.sig`,
      };
    }
    allowed = join(dir, 'allowed_signers');
    writeFileSync(
      allowed,
      `alice@example.com namespaces="qemu-harden" ${keys.alice!.pub}\nbob@example.com ${keys.bob!.pub}\n`,
    );
    template = join(dir, 'template');
    template2 = join(dir, 'template2');
    for (const [preset, out] of [
      ['kvm-headless', template],
      ['multi-tenant', template2],
    ] as const) {
      const r = await cli(['generate', '--preset', preset, '--out', out]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  let n = 0;
  /** A fresh copy of a generated bundle, signed by these keys. */
  const bundleOf = async (from: string, ...signers: string[]) => {
    const b = join(dir, `bundle-${++n}`);
    cpSync(from, b, { recursive: true });
    for (const s of signers) {
      const r = await cli(['sign', b, '--key', keys[s]!.key]);
      assert.equal(r.code, 0, r.stderr);
    }
    return b;
  };
  const bundle = async (...signers: string[]) => await bundleOf(template, ...signers);
  const newRoot = (t: { after(fn: () => void): void }) => {
    const root = tempDir(t, 'qh-signing-root-');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    return root;
  };
  const enroll = (root: string, text = readFileSync(allowed)) => {
    mkdirSync(join(root, 'etc/qemu-harden'), { recursive: true });
    writeFileSync(join(root, TRUST), text);
  };
  const refused = (r: { code: number; stderr: string }, message: RegExp) => {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  };

  test('sign writes one OpenSSH signature per key beside the manifest; a second key adds one, the same key replaces its own', async () => {
    const b = await bundle('alice');
    assert.deepEqual(readdirSync(join(b, 'signatures')), [keys.alice!.file.slice('signatures/'.length)]);
    // The signature is OpenSSH's own format: ssh-keygen verifies it against the manifest with no help from us.
    const out = execFileSync(
      'ssh-keygen',
      ['-Y', 'verify', '-f', allowed, '-I', 'alice@example.com', '-n', 'qemu-harden', '-s', join(b, keys.alice!.file)],
      { input: readFileSync(join(b, 'MANIFEST.sha256')), encoding: 'utf8' },
    );
    assert.match(out, /^Good "qemu-harden" signature for alice@example\.com/);
    const r = await cli(['sign', b, '--key', keys.bob!.key]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /carries 2 signatures/);
    const again = await cli(['sign', b, '--key', keys.alice!.key]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      readdirSync(join(b, 'signatures')).sort(),
      [keys.alice!.file, keys.bob!.file].map((f) => f.slice('signatures/'.length)).sort(),
    );
    // The bundle with its signatures is still a bundle: verify's manifest check and apply's admission take it.
    const v = await cli(['verify', b, '--json']);
    assert.equal(JSON.parse(v.stdout).checks.find((c: { check: string }) => c.check === 'manifest').status, 'passed');
  });

  test('sign refuses a bundle that fails its manifest, and a key it cannot read; it writes nothing', async () => {
    const b = await bundle();
    appendFileSync(join(b, UNIT), '#');
    refused(
      await cli(['sign', b, '--key', keys.alice!.key]),
      /sign refused: .* does not match its MANIFEST\.sha256.*\n.*qemu-server\.service: changed/,
    );
    assert.ok(!existsSync(join(b, 'signatures')), 'nothing written');
    const c = await bundle();
    refused(
      await cli(['sign', c, '--key', join(dir, 'no-such-key')]),
      /--key .*no-such-key: cannot read it \(ENOENT\)/,
    );
    refused(await cli(['sign', c, '--key', allowed]), /--key .*allowed_signers: ssh-keygen could not sign with it: /);
    assert.ok(!existsSync(join(c, 'signatures')), 'nothing written');
  });

  test('anything else unlisted beside the signatures is refused by the reader', async (t) => {
    const b = await bundle('alice');
    writeFileSync(join(b, 'signatures/notes.txt'), 'reviewed by alice\n');
    const root = newRoot(t);
    const before = treeHash(root);
    const r = await cli(['apply', b, '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /signatures\/notes\.txt: not a signature \(signatures\/<key fingerprint>\.sig/);
    assert.equal(treeHash(root), before);
    refused(
      await cli(['apply', b, '--root', root, '--yes', '--signers', allowed]),
      /signatures\/notes\.txt: does not match the signed MANIFEST\.sha256: not a signature/,
    );
    assert.equal(treeHash(root), before);
  });

  test('a signed bundle applies with --signers (--root); the record keeps its signatures; status names the signer', async (t) => {
    const b = await bundle('alice');
    const root = newRoot(t);
    const r = await cli(['apply', b, '--root', root, '--yes', '--signers', allowed]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(readFileSync(join(root, 'etc/systemd/system/qemu-server.service')), readFileSync(join(b, UNIT)));
    assert.deepEqual(
      readFileSync(join(root, RECORD, 'current', keys.alice!.file)),
      readFileSync(join(b, keys.alice!.file)),
    );

    const open = await cli(['status', '--root', root]);
    assert.equal(open.code, 0, open.stdout + open.stderr);
    assert.match(open.stdout, new RegExp(`Not enrolled: ${root}/etc/qemu-harden/allowed_signers is absent`));
    assert.ok(
      open.stdout.includes(`Signed with ED25519 key ${keys.alice!.fingerprint}; no trust file here names the signer.`),
      open.stdout,
    );

    enroll(root);
    const enrolled = await cli(['status', '--root', root, '--json']);
    assert.equal(enrolled.code, 0, enrolled.stdout + enrolled.stderr);
    const s = JSON.parse(enrolled.stdout).signing;
    assert.equal(s.enrolled, join(root, TRUST));
    assert.deepEqual(s.signers, [
      { principal: 'alice@example.com', type: 'ED25519', fingerprint: keys.alice!.fingerprint, file: keys.alice!.file },
    ]);
    assert.ok(
      (await cli(['status', '--root', root])).stdout.includes(
        `Signed by alice@example.com (ED25519 key ${keys.alice!.fingerprint}), allowed by ${join(root, TRUST)}.`,
      ),
    );
  });

  // Each case: how the bundle (or the trust file) is made wrong, and what the refusal must name.
  const cases: [string, (b: string) => string | Promise<string>, RegExp][] = [
    [
      'one byte changed in a unit',
      (b) => {
        appendFileSync(join(b, UNIT), '#');
        return allowed;
      },
      /qemu-server\.service: does not match the signed MANIFEST\.sha256: changed since the bundle was generated/,
    ],
    [
      'the manifest recomputed after the change',
      (b) => {
        appendFileSync(join(b, UNIT), '#');
        recomputeManifest(b);
        return allowed;
      },
      /signatures\/\S+\.sig: does not sign this MANIFEST\.sha256 in namespace "qemu-harden" \(ssh-keygen: Signature verification failed: incorrect signature\)/,
    ],
    [
      'a signature by a key allowed_signers does not list',
      async (b) => {
        rmSync(join(b, 'signatures'), { recursive: true });
        assert.equal((await cli(['sign', b, '--key', keys.eve!.key])).code, 0);
        return allowed;
      },
      /signatures\/\S+\.sig: made by ED25519 key SHA256:\S+, which .*allowed_signers does not allow/,
    ],
    [
      'a signature for another namespace (git)',
      (b) => {
        rmSync(join(b, 'signatures'), { recursive: true });
        mkdirSync(join(b, 'signatures'));
        const sig = execFileSync('ssh-keygen', ['-Y', 'sign', '-f', keys.alice!.key, '-n', 'git'], {
          input: readFileSync(join(b, 'MANIFEST.sha256')),
          stdio: ['pipe', 'pipe', 'ignore'],
        });
        writeFileSync(join(b, keys.alice!.file), sig);
        return allowed;
      },
      /signatures\/\S+\.sig: does not sign this MANIFEST\.sha256 in namespace "qemu-harden" \(ssh-keygen: Couldn't verify signature: namespace does not match\)/,
    ],
    [
      'an unsigned bundle',
      (b) => {
        rmSync(join(b, 'signatures'), { recursive: true });
        return allowed;
      },
      /signatures\/: none: the bundle is not signed/,
    ],
    [
      'a key its allowed_signers line keeps to another namespace (namespaces="git")',
      () => {
        const f = join(dir, 'git-only');
        writeFileSync(f, `alice@example.com namespaces="git" ${keys.alice!.pub}\n`);
        return f;
      },
      /made by ED25519 key \S+ .*, which .*git-only does not allow .*\(ssh-keygen: .*not permitted for use in signature namespace "qemu-harden"/,
    ],
    [
      'a key not valid yet (valid-after=)',
      () => {
        const f = join(dir, 'not-yet');
        writeFileSync(f, `alice@example.com valid-after="20990101" ${keys.alice!.pub}\n`);
        return f;
      },
      /made by ED25519 key \S+, which .*not-yet does not allow \(ssh-keygen: .*key is not yet valid/,
    ],
  ];
  for (const [what, spoil, message] of cases)
    test(`refused with exit 2, naming why, and nothing changes: ${what}`, async (t) => {
      const b = await bundle('alice');
      const trust = await spoil(b);
      const root = newRoot(t);
      const before = treeHash(root);
      const r = await cli(['apply', b, '--root', root, '--yes', '--signers', trust]);
      refused(r, /refused: the bundle does not pass the signature check against .*:\n/);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /Nothing was changed\.\n$/);
      assert.equal(treeHash(root), before, 'nothing changed');
      const v = await cli(['verify', b, '--signers', trust]);
      refused(v, /verify refused: .* does not pass the signature check against .*; no other check ran/);
      assert.match(v.stderr, message);
      assert.equal(v.stdout, '', 'no other check ran');
    });

  test('verify --signers checks the signatures first, then runs every check on the bytes it read', async () => {
    const b = await bundle('alice', 'bob');
    const r = await cli(['verify', b, '--signers', allowed]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // The signers in the order of their signature files, which are named by fingerprint.
    const signers = [
      ['alice', `alice@example.com (ED25519 key ${keys.alice!.fingerprint})`],
      ['bob', `bob@example.com (ED25519 key ${keys.bob!.fingerprint})`],
    ]
      .sort(([x], [y]) => (keys[x!]!.file < keys[y!]!.file ? -1 : 1))
      .map(([, d]) => d);
    assert.ok(r.stdout.includes(`\n  ok    signatures — signed by ${signers.join(', ')}\n`), r.stdout);
    assert.match(r.stdout, /ok {4}manifest\n {2}ok {4}answers — \d+ files regenerated/);
    assert.doesNotMatch(r.stdout, /qemu-harden-verify-/, 'the private copy is never named');
  });

  test('an enrolled host requires a signature with no --signers, and no flag skips it; rollback too', async (t) => {
    const root = newRoot(t);
    const unsigned = await bundle();
    assert.equal((await cli(['apply', unsigned, '--root', root, '--yes'])).code, 0, 'not enrolled: unsigned applies');
    enroll(root);
    const before = treeHash(root);
    // A bundle apply would install anywhere else, signed by eve, whom the operator's own --signers file allows:
    // the host's file still has to be satisfied.
    const other = await bundleOf(template2, 'eve');
    const eveOnly = join(dir, 'eve-only');
    writeFileSync(eveOnly, `eve@example.com ${keys.eve!.pub}\n`);
    for (const args of [[], ['--signers', eveOnly], ['--dry-run']]) {
      const r = await cli(['apply', other, '--root', root, '--yes', ...args]);
      refused(r, new RegExp(`the signature check against ${join(root, TRUST)}`));
      assert.equal(treeHash(root), before, `nothing changed (${args.join(' ')})`);
    }
    const signed = await bundleOf(template2, 'alice');
    const ok = await cli(['apply', signed, '--root', root, '--yes']);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);

    // Rollback would install the unsigned bundle kept as previous: refused while the host is enrolled.
    const held = treeHash(root);
    const rb = await cli(['rollback', '--root', root, '--yes']);
    refused(rb, /signatures\/: none: the bundle is not signed/);
    assert.equal(treeHash(root), held, 'nothing changed');
    assert.equal((await cli(['status', '--root', root])).code, 0);

    // The way to install an unsigned bundle there: an admin removes the file, and status says so.
    rmSync(join(root, TRUST));
    const st = await cli(['status', '--root', root]);
    assert.match(
      st.stdout,
      /Not enrolled: .*allowed_signers is absent, so apply and rollback here accept unsigned bundles/,
    );
    assert.equal((await cli(['rollback', '--root', root, '--yes'])).code, 0);
    // An enrolled host running a bundle none of its keys signed is a finding.
    enroll(root);
    const unsignedNow = await cli(['status', '--root', root]);
    assert.equal(unsignedNow.code, 1, unsignedNow.stdout);
    assert.match(unsignedNow.stdout, /UNSIGNED: no key .*allowed_signers allows signed the installed bundle/);
  });

  test('--require-signatures 2: two distinct keys apply; one is refused, however many copies of its signature', async (t) => {
    const root = newRoot(t);
    const b = await bundle('alice');
    const before = treeHash(root);
    const one = await cli(['apply', b, '--root', root, '--yes', '--signers', allowed, '--require-signatures', '2']);
    refused(
      one,
      new RegExp(
        `requires 2 distinct signers it lists; only alice@example\\.com \\(ED25519 key ${keys.alice!.fingerprint.replace(/[+/]/g, '\\$&')}\\) signed`,
      ),
    );
    copyFileSync(join(b, keys.alice!.file), join(b, `signatures/${'A'.repeat(43)}.sig`));
    refused(
      await cli(['apply', b, '--root', root, '--yes', '--signers', allowed, '--require-signatures', '2']),
      /requires 2 distinct signers/,
    );
    assert.equal(treeHash(root), before);
    assert.equal((await cli(['sign', b, '--key', keys.bob!.key])).code, 0);
    const two = await cli(['apply', b, '--root', root, '--yes', '--signers', allowed, '--require-signatures', '2']);
    assert.equal(two.code, 0, two.stderr + two.stdout);
    // On an enrolled host the count applies to the host's file as well: it allows alice alone.
    enroll(root, Buffer.from(`alice@example.com ${keys.alice!.pub}\n`));
    const held = treeHash(root);
    refused(
      await cli([
        'apply',
        await bundleOf(template2, 'alice', 'bob'),
        '--root',
        root,
        '--yes',
        '--require-signatures',
        '2',
      ]),
      /allowed_signers: requires 2 distinct signers it lists; only alice@example\.com/,
    );
    assert.equal(treeHash(root), held);
  });

  test('the options are checked: --require-signatures needs a trust file, --signers a readable file', async (t) => {
    const root = newRoot(t);
    const b = await bundle('alice');
    refused(
      await cli(['apply', b, '--root', root, '--yes', '--require-signatures', '2']),
      /--require-signatures needs an allowed_signers file/,
    );
    refused(await cli(['verify', b, '--require-signatures', '2']), /--require-signatures needs --signers FILE/);
    refused(
      await cli(['apply', b, '--root', root, '--yes', '--signers', allowed, '--require-signatures', 'two']),
      /--require-signatures two: expected the number of distinct signers/,
    );
    refused(
      await cli(['apply', b, '--root', root, '--yes', '--signers', join(dir, 'missing')]),
      /--signers .*missing: cannot read it \(ENOENT\)/,
    );
    refused(await cli(['sign', b]), /sign needs the bundle directory and a key/);
    assert.deepEqual(readdirSync(root), ['etc']);
  });

  test('export ansible --signers carries the signatures and the trust file, and refuses an unsigned bundle', async () => {
    const signed = await bundle('alice');
    const out = join(dir, 'export');
    const r = await cli([
      'export',
      'ansible',
      '--host',
      `h1=${signed}`,
      '--signers',
      allowed,
      '--require-signatures',
      '1',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(join(out, 'allowed_signers')), readFileSync(allowed));
    assert.deepEqual(
      readFileSync(join(out, 'bundles/h1', keys.alice!.file)),
      readFileSync(join(signed, keys.alice!.file)),
    );
    assert.match(readFileSync(join(out, 'site.yml'), 'utf8'), /qemu_harden_require_signatures: 1/);
    const unsigned = await bundle();
    const refusedOut = join(dir, 'export-refused');
    refused(
      await cli(['export', 'ansible', '--host', `h1=${unsigned}`, '--signers', allowed, '--out', refusedOut]),
      /--host h1=.*: .* does not pass the signature check against .*; nothing was written:\n.*signatures\/: none/,
    );
    assert.ok(!existsSync(refusedOut), 'nothing written');
  });
});
