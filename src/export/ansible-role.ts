// The Ansible role that `qemu-harden export ansible` writes, file by file. It is the same for every host and every
// bundle: each host reads its own bundle (bundles/<inventory hostname>/ by default) when the play runs. Its steps
// follow src/install/, and it keeps the install record docs/install.md describes (docs/ansible.md: the role).
import { SIGNATURE_PATTERN } from '../bundle-layout.js';
import type { ConfinementBackend } from '../confine/backend.js';
import { CONFINEMENT } from '../confine/index.js';
import * as N from '../names.js';
import { GUEST_PLACEHOLDER, installablePatterns, installableTemplate } from '../install/paths.js';
import { HOST_TRUST, NAMESPACE, SSH_KEYGEN_PACKAGE } from '../sshsig.js';

/** A YAML block sequence of strings, each double-quoted (JSON's escapes are YAML's). */
const yamlList = (items: string[]) => items.map((i) => `  - ${JSON.stringify(i)}`).join('\n');

/** A backend's names in the role: the variables and the handler topic of its files. */
const role = (b: ConfinementBackend) => ({
  /** The host paths it installs, shared and per guest: a pattern each, and all of them as one anchored pattern. */
  patterns: `qemu_harden_${b.id}_patterns`,
  paths: `qemu_harden_${b.id}_paths`,
  /** The host paths of the files it shares among all the guests it confines. */
  shared: `qemu_harden_${b.id}_shared`,
  /** The installed files it loads, and the pattern that picks them. */
  loads: `qemu_harden_${b.id}_loads`,
  files: `qemu_harden_${b.id}_files`,
  /** The installed files it loads whose guests left the bundle: what it unloads before they are moved away. */
  gone: `qemu_harden_${b.id}_gone`,
  installed: `qemu_harden_installed_${b.id}`,
  listen: `qemu-harden ${b.id} changed`,
});

/**
 * A Jinja list of backend b's files of guest g (the loop variable), from its per-guest paths: one to a line, under
 * the first (where restartsFor puts it), so that a guest with helper units stays within ansible-lint's columns.
 */
const guestFilesOf = (b: ConfinementBackend) =>
  `[${b
    .guestFiles(GUEST_PLACEHOLDER)
    .map((p) =>
      p
        .split(GUEST_PLACEHOLDER)
        .flatMap((part, i) => [...(i ? ['g'] : []), ...(part ? [`'${part}'`] : [])])
        .join(' ~ '),
    )
    .join(`,\n${' '.repeat('      {%- set mine = ['.length)}`)}]`;

/**
 * Guest g (the loop variable) restarts for backend b when one of its own files changed, or when it is confined
 * (one of its files is in the bundle) and a file the backend shares among all its guests changed.
 */
const restartsFor = (b: ConfinementBackend) => `
      {%- set mine = ${guestFilesOf(b)} -%}
      {%- if mine | select('in', changed) | list
            or (mine | select('in', qemu_harden_new) | list and ${role(b).shared} | select('in', changed) | list) -%}
      {%- set _ = restart.append('${b.id}') -%}
      {%- endif -%}`;

/** The role's files, with the confinement backends registered when it is exported. */
export const roleFiles = (backends: readonly ConfinementBackend[] = CONFINEMENT): Record<string, string> => ({
  'defaults/main.yml': String.raw`---
# The bundle this host gets: a directory written by qemu-harden generate, chosen by inventory hostname.
qemu_harden_bundle: "{{ playbook_dir }}/bundles/{{ inventory_hostname }}"
# Enable and start every guest of the bundle, and restart the guests whose unit or profile changed.
# With false, the role installs and activates the files and names the guests that need a (re)start.
qemu_harden_start: true
# The install record shared with qemu-harden apply: what is installed, the one before, an install under way.
qemu_harden_record: /var/lib/qemu-harden/.installed
# Replaced and removed files are kept here, under the UTC time of the run, at their host path.
qemu_harden_backups: /var/backups/qemu-harden
# The team's allowed_signers (OpenSSH's format), written by qemu-harden export --signers. While it exists, each host
# checks with its own ssh-keygen that its bundle is signed by keys this file allows, before anything on it changes,
# and gets it installed as ${HOST_TRUST}: the host is enrolled, and qemu-harden apply there checks it too.
# A host enrolled already also holds the bundle to its own file, whatever this one says.
qemu_harden_allowed_signers: "{{ playbook_dir }}/allowed_signers"
# How many distinct keys each trust file allows must have signed the bundle.
qemu_harden_require_signatures: 1
`,
  'vars/main.yml': String.raw`---
# Where the bundle installed before is recorded: current, or previous when an install stopped between moving
# current away and moving the new bundle in; empty when the host has no record.
qemu_harden_old_record: >-
  {{- 'current' if (qemu_harden_record ~ '/current/MANIFEST.sha256') in qemu_harden_host
      else ('previous' if (qemu_harden_record ~ '/journal.json') in qemu_harden_host
                          and (qemu_harden_record ~ '/previous/MANIFEST.sha256') in qemu_harden_host
            else '') -}}
# Files of guests that left the bundle and are still on the host.
qemu_harden_gone: "{{ qemu_harden_found_removals.files | default([]) | map(attribute='path') | select('in', qemu_harden_removals) | list }}"
# Every copy this run made, and those that replaced a file (and so left a backup next to it); none when the
# install was left out (tasks/install.yml).
qemu_harden_installed: >-
  {{ [${['sysusers', 'tmpfiles', 'udev', ...backends.map((b) => b.id), 'units', 'other']
    .map((k) => `qemu_harden_installed_${k} | default({})`)
    .join(',\n      ')}]
     | map(attribute='results', default=[]) | flatten }}
qemu_harden_backed_up: "{{ qemu_harden_installed | selectattr('backup_file', 'defined') | list }}"
# Whether the host files are copied from the bundle staged on the host (see the install tasks).
qemu_harden_from_stage: "{{ qemu_harden_record_moves and not ansible_check_mode and not ansible_diff_mode }}"
# The only host paths a bundle installs (qemu-harden's src/install/paths.ts): these once per host, these per
# guest (${GUEST_PLACEHOLDER} stands for the guest's name, which must be a name qemu-harden gives). Any other file
# under root/ fails the host before anything on it changes, and a recorded file outside them is never removed.
qemu_harden_installable_shared:
${yamlList(installableTemplate().shared)}
qemu_harden_installable_guest:
${yamlList(installableTemplate().guest)}
qemu_harden_guest_name: ${JSON.stringify(N.GUEST_NAME.source)}
# The kinds of helper unit a guest may have (its TPM: qemu-GUEST-tpm.service and .socket, and their profile; its
# passt; a virtiofsd per shared folder): they restart with their guest, and stop with it.
qemu_harden_helper_kinds:
${yamlList([...N.HELPER_KINDS])}
# Where a bundle keeps the signatures of its manifest (qemu-harden sign): the only files it holds unlisted.
qemu_harden_signature_path: ${JSON.stringify(SIGNATURE_PATTERN)}
qemu_harden_signatures: >-
  {{ qemu_harden_tree | selectattr('state', 'equalto', 'file') | map(attribute='path')
     | select('match', qemu_harden_signature_path) | list }}
# The same as regular expressions, for the files an earlier bundle installed (whose guests are not read again).
qemu_harden_installable_patterns:
${yamlList(installablePatterns())}
# The files each activation step reads.
qemu_harden_sysusers_files: "{{ qemu_harden_new.keys() | select('match', '^/etc/sysusers\\.d/[^/]+\\.conf$') | sort }}"
qemu_harden_tmpfiles_files: "{{ qemu_harden_new.keys() | select('match', '^/etc/tmpfiles\\.d/[^/]+\\.conf$') | sort }}"
${backends
  .map(
    (b) => `# ${b.name}: the paths of its files, those it loads, and which of them this bundle installs.
${role(b).patterns}:
${yamlList(installablePatterns({ shared: b.sharedFiles, guest: b.guestFiles(GUEST_PLACEHOLDER) }))}
${role(b).paths}: "^(?:{{ ${role(b).patterns} | join('|') }})$"
${role(b).shared}:
${yamlList(b.sharedFiles)}
${role(b).loads}: ${JSON.stringify(b.loads.source)}
${role(b).files}: "{{ qemu_harden_new.keys() | select('match', ${role(b).loads}) | sort }}"
${role(b).gone}: "{{ qemu_harden_gone | select('match', ${role(b).loads}) | list }}"
`,
  )
  .join('')}`,
  'meta/main.yml': String.raw`---
galaxy_info:
  role_name: qemu_harden
  namespace: qemu_harden
  author: qemu-harden
  description: Install a qemu-harden bundle (hardened QEMU guests under systemd) and keep the install record
  license: MIT
  min_ansible_version: "2.14"
  platforms:
    - name: Debian
      versions:
        - bookworm
  galaxy_tags:
    - qemu
    - systemd
${backends
  .map(
    (b) => `    - ${b.id}
`,
  )
  .join('')}    - hardening
dependencies: []
`,
  'tasks/main.yml': String.raw`---
# Install this host's qemu-harden bundle the way qemu-harden apply does, and keep the same install record
# (/var/lib/qemu-harden/.installed), so that apply and this role can take turns on one host.
# Nothing on the host changes before the bundle has been checked against its manifest on the controller and, when
# there is a trust file (the team's, or the host's own), its signatures on the host.

- name: Read the bundle on the controller
  ansible.builtin.set_fact:
    qemu_harden_manifest: "{{ lookup('ansible.builtin.file', qemu_harden_bundle ~ '/MANIFEST.sha256', rstrip=false, errors='ignore') }}"
    qemu_harden_tree: "{{ query('community.general.filetree', qemu_harden_bundle) | rejectattr('state', 'equalto', 'directory') | list }}"
    qemu_harden_run_time: "{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}"

- name: Parse the manifest
  ansible.builtin.set_fact:
    # One entry per line: {sha256, path}. A line that is not "<sha256>  <path>" has an empty sha256.
    qemu_harden_entries: >-
      {%- set out = [] -%}
      {%- for line in qemu_harden_manifest.split('\n') if line != '' -%}
      {%- set m = line | regex_search('^([0-9a-f]{64})  (README\\.md|answers\\.json|root/.+)$', '\\1', '\\2') -%}
      {%- set safe = m and not (('/' ~ m[1] ~ '/') is search('/\\.{0,2}/')) -%}
      {%- set _ = out.append({'sha256': m[0] if safe else '', 'path': m[1] if safe else line}) -%}
      {%- endfor -%}
      {{ out }}

- name: Check every file of the bundle against its manifest before changing anything
  ansible.builtin.assert:
    that:
      - qemu_harden_entries | length > 0
      - qemu_harden_problems | length == 0
    quiet: true
    fail_msg: "{{ qemu_harden_no_bundle if qemu_harden_tree | length == 0 else qemu_harden_mismatch }}"
  vars:
    qemu_harden_no_bundle: >-
      {{ qemu_harden_bundle }} is not there; nothing was changed on this host: the export has no bundle for
      {{ inventory_hostname }}; export one for it (qemu-harden export ansible --host {{ inventory_hostname }}=BUNDLE),
      or leave it out of the play (--limit)
    qemu_harden_mismatch: >-
      {{ qemu_harden_bundle }} does not match its manifest; nothing was changed on this host:
      {{ qemu_harden_problems | join('; ') if qemu_harden_problems else 'MANIFEST.sha256 is missing or empty' }}
    qemu_harden_listed: "{{ qemu_harden_entries | map(attribute='path') | list }}"
    qemu_harden_problems: >-
      {%- set out = [] -%}
      {%- for e in qemu_harden_entries -%}
      {%- if e.sha256 == '' -%}
      {%- set _ = out.append('MANIFEST.sha256: not a "<sha256>  <relative path>" line: ' ~ e.path) -%}
      {%- elif (lookup('ansible.builtin.file', qemu_harden_bundle ~ '/' ~ e.path, rstrip=false, errors='ignore') | hash('sha256')) != e.sha256 -%}
      {%- set _ = out.append(e.path ~ ': missing, or changed since the bundle was generated (checksum differs)') -%}
      {%- endif -%}
      {%- endfor -%}
      {%- for f in qemu_harden_tree -%}
      {%- if f.state != 'file' -%}
      {%- set _ = out.append(f.path ~ ': a ' ~ f.state ~ ', not a regular file') -%}
      {%- elif f.path != 'MANIFEST.sha256' and f.path not in qemu_harden_listed and f.path not in qemu_harden_signatures -%}
      {%- set _ = out.append(f.path ~ ': not listed in the manifest') -%}
      {%- endif -%}
      {%- endfor -%}
      {{ out }}

- name: Check that the bundle installs only the files qemu-harden installs
  ansible.builtin.assert:
    that: qemu_harden_foreign | length == 0
    quiet: true
    fail_msg: >-
      {{ qemu_harden_bundle }} holds files qemu-harden never installs; nothing was changed on this host:
      {{ qemu_harden_foreign | join('; ') }}
  vars:
    qemu_harden_named: >-
      {{ (lookup('ansible.builtin.file', qemu_harden_bundle ~ '/answers.json') | from_json).guests | default([])
         | map(attribute='name') | list }}
    qemu_harden_foreign: >-
      {%- set out = [] -%}
      {%- set allowed = qemu_harden_installable_shared + [] -%}
      {%- for g in qemu_harden_named -%}
      {%- if g is string and g is match(qemu_harden_guest_name) -%}
      {%- for p in qemu_harden_installable_guest -%}
      {%- set _ = allowed.append(p | replace('${GUEST_PLACEHOLDER}', g)) -%}
      {%- endfor -%}
      {%- else -%}
      {%- set _ = out.append('answers.json: ' ~ (g | string | to_json) ~ ' is not a guest name qemu-harden gives') -%}
      {%- endif -%}
      {%- endfor -%}
      {%- for e in qemu_harden_entries if e.path.startswith('root/') and e.path[4:] not in allowed -%}
      {%- set _ = out.append(e.path ~ ': not a path qemu-harden installs') -%}
      {%- endfor -%}
      {{ out }}

- name: Work out what the bundle installs
  ansible.builtin.set_fact:
    # Host path → sha1 (what the find and copy modules compare) of every file under root/.
    qemu_harden_new: >-
      {%- set out = {} -%}
      {%- for e in qemu_harden_entries if e.path.startswith('root/') -%}
      {%- set _ = out.update({e.path[4:]: lookup('ansible.builtin.file', qemu_harden_bundle ~ '/' ~ e.path, rstrip=false) | hash('sha1')}) -%}
      {%- endfor -%}
      {{ out }}
    qemu_harden_to: "{{ qemu_harden_manifest | hash('sha256') }}"
    qemu_harden_to_sha1: "{{ qemu_harden_manifest | hash('sha1') }}"
    qemu_harden_guests: "{{ (lookup('ansible.builtin.file', qemu_harden_bundle ~ '/answers.json') | from_json).guests | map(attribute='name') | list }}"

- name: Look for the host's own allowed_signers (an enrolled host)
  ansible.builtin.stat:
    path: ${HOST_TRUST}
    get_checksum: false
  register: qemu_harden_enrolled

# The check runs on the host, with the host's ssh-keygen and its own trust file: the controller's word that a
# bundle is signed is not enough. It runs under --check too, in a private directory it removes.
- name: Check the bundle's signatures on the host (tasks/signatures.yml)
  ansible.builtin.include_tasks: signatures.yml
  when: qemu_harden_enrolled.stat.exists or qemu_harden_allowed_signers is file

- name: Enroll the host in the team's allowed_signers
  when: qemu_harden_allowed_signers is file
  block:
    - name: Create ${HOST_TRUST.slice(0, HOST_TRUST.lastIndexOf('/'))}
      ansible.builtin.file:
        path: ${HOST_TRUST.slice(0, HOST_TRUST.lastIndexOf('/'))}
        state: directory
        owner: root
        group: root
        mode: "0755"

    - name: Install the team's allowed_signers as ${HOST_TRUST}
      ansible.builtin.copy:
        src: "{{ qemu_harden_allowed_signers }}"
        dest: ${HOST_TRUST}
        owner: root
        group: root
        mode: "0644"

- name: Look at the installed files and the install record
  ansible.builtin.find:
    paths: "{{ (qemu_harden_new.keys() | map('regex_replace', '^(/[^/]+).*$', '\\1') | list + [qemu_harden_record | dirname | dirname]) | unique }}"
    patterns: >-
      {{ (qemu_harden_new.keys() | map('basename') | list + qemu_harden_new.keys() | map('dirname') | map('basename') | list
          + [qemu_harden_record | dirname | basename, qemu_harden_record | basename, 'MANIFEST.sha256', 'journal.json', 'next']) | unique }}
    depth: "{{ ([4] + qemu_harden_new.keys() | map('regex_findall', '/') | map('length') | list) | max }}"
    recurse: true
    file_type: any
    hidden: true
    get_checksum: true
  register: qemu_harden_found

- name: Index what was found
  ansible.builtin.set_fact:
    qemu_harden_host: "{{ dict(qemu_harden_found.files | map(attribute='path') | zip(qemu_harden_found.files)) }}"

- name: Read the manifest of the bundle installed before
  ansible.builtin.slurp:
    src: "{{ qemu_harden_record }}/{{ qemu_harden_old_record }}/MANIFEST.sha256"
  register: qemu_harden_old_manifest
  when:
    - qemu_harden_old_record != ''
    - qemu_harden_host[qemu_harden_record ~ '/' ~ qemu_harden_old_record ~ '/MANIFEST.sha256'].checksum != qemu_harden_to_sha1

- name: Read what an install that stopped midway left (tasks/interrupted.yml)
  ansible.builtin.include_tasks: interrupted.yml
  when: (qemu_harden_record ~ '/journal.json') in qemu_harden_host

- name: Plan the changes
  ansible.builtin.set_fact:
    qemu_harden_from: >-
      {{- (qemu_harden_old_manifest.content | b64decode | hash('sha256')) if qemu_harden_old_manifest.content is defined
          else (qemu_harden_to if qemu_harden_old_record != '' else '') -}}
    qemu_harden_record_moves: >-
      {{- qemu_harden_host.get(qemu_harden_record ~ '/current/MANIFEST.sha256', {}).get('checksum') != qemu_harden_to_sha1 -}}
    # Files whose content, mode or owner differ from the bundle, by the directory that decides their activation step.
    qemu_harden_changes: >-
      {%- set out = [] -%}
      {%- for path, sha1 in qemu_harden_new.items() -%}
      {%- set h = qemu_harden_host.get(path, {}) -%}
      {%- if h.get('checksum') != sha1 or h.get('mode') != '0644' or h.get('uid') != 0 or h.get('gid') != 0 -%}
      {%- set _ = out.append(path) -%}
      {%- endif -%}
      {%- endfor -%}
      {{ out }}
    # Files of the bundle installed before (and of the one an interrupted install was putting in place) that the
    # new bundle no longer has.
    qemu_harden_removals: >-
      {%- set out = [] -%}
      {%- for manifest in [qemu_harden_old_manifest, qemu_harden_next_manifest | default({})] if manifest.content is defined -%}
      {%- for line in (manifest.content | b64decode).split('\n') -%}
      {%- set m = line | regex_search('^[0-9a-f]{64}  root(/.+)$', '\\1') -%}
      {%- if m and m[0] not in qemu_harden_new and m[0] not in out and m[0] is match('^(?:' ~ (qemu_harden_installable_patterns | join('|')) ~ ')$') -%}
      {%- set _ = out.append(m[0]) -%}
      {%- endif -%}
      {%- endfor -%}
      {%- endfor -%}
      {{ out }}
    qemu_harden_backup_dir: "{{ qemu_harden_backups }}/{{ qemu_harden_run_time }}"

- name: Look for the files of guests that left
  ansible.builtin.find:
    paths: "{{ qemu_harden_removals | map('dirname') | unique }}"
    patterns: "{{ qemu_harden_removals | map('basename') | unique }}"
    hidden: true
  register: qemu_harden_found_removals
  when: qemu_harden_removals | length > 0

- name: Remove what an interrupted install left in the staging directory
  ansible.builtin.file:
    path: "{{ qemu_harden_record }}/next"
    state: absent
  when: (qemu_harden_record ~ '/next') in qemu_harden_host

- name: Stage the bundle in the install record (tasks/stage.yml)
  ansible.builtin.include_tasks: stage.yml
  when: qemu_harden_record_moves and not ansible_check_mode

# Each task of the install has a condition or a loop of its own; the install is left out only when all of them
# would skip: the record stays, no file changes or leaves, and no install stopped midway.
- name: Install the bundle's files and record it (tasks/install.yml)
  ansible.builtin.include_tasks: install.yml
  when: >-
    qemu_harden_record_moves or qemu_harden_changes | length > 0 or qemu_harden_removals | length > 0
    or qemu_harden_journal.content is defined

- name: Work out which guests restart
  ansible.builtin.set_fact:
    # A guest restarts when its unit, its tap unit or one of its helper units (a TPM's, passt's or a virtiofsd's
    # service and socket, which systemd restarts with it) changed, or a confinement file of its own, or one its backend shares among all the guests it
    # confines (the abstraction every AppArmor profile includes); its tap unit restarts before it when that changed.
    qemu_harden_restart: >-
      {%- set changed = qemu_harden_installed | selectattr('changed') | map(attribute='item') | list -%}
      {%- set out = [] -%}
      {%- for g in qemu_harden_guests -%}
      {%- set unit = '/etc/systemd/system/qemu-' ~ g ~ '.service' -%}
      {%- set tap = '/etc/systemd/system/qemu-' ~ g ~ '-tap.service' -%}
      {%- if tap in changed -%}{%- set _ = out.append('qemu-' ~ g ~ '-tap.service') -%}{%- endif -%}
      {%- set helpers = [] -%}
      {%- for k in qemu_harden_helper_kinds -%}
      {%- set _ = helpers.append('/etc/systemd/system/qemu-' ~ g ~ '-' ~ k ~ '.service') -%}
      {%- set _ = helpers.append('/etc/systemd/system/qemu-' ~ g ~ '-' ~ k ~ '.socket') -%}
      {%- endfor -%}
      {%- set restart = [] -%}${backends.map(restartsFor).join('')}
      {%- if unit in changed or tap in changed or helpers | select('in', changed) | list or restart -%}
      {%- set _ = out.append('qemu-' ~ g ~ '.service') -%}
      {%- endif -%}
      {%- endfor -%}
      {{ out }}

- name: Run the activation steps of what changed
  ansible.builtin.meta: flush_handlers

- name: Restart the tap units that changed
  ansible.builtin.systemd_service:
    name: "{{ item }}"
    state: restarted
  loop: "{{ qemu_harden_restart | select('match', '.*-tap\\.service$') | list }}"
  when: qemu_harden_start and not (ansible_check_mode and ('/etc/systemd/system/' ~ item) not in qemu_harden_host)

- name: Enable and start every guest; restart those whose unit or profile changed
  ansible.builtin.systemd_service:
    name: "qemu-{{ item }}.service"
    state: "{{ 'restarted' if ('qemu-' ~ item ~ '.service') in qemu_harden_restart else 'started' }}"
    enabled: true
  loop: "{{ qemu_harden_guests }}"
  when: qemu_harden_start and not (ansible_check_mode and ('/etc/systemd/system/qemu-' ~ item ~ '.service') not in qemu_harden_host)

- name: Name the guests that need a restart
  ansible.builtin.debug:
    msg: "Their unit or profile changed; restart them to put it in force: systemctl restart {{ qemu_harden_restart | join(' ') }}"
  when: not qemu_harden_start and qemu_harden_restart | length > 0
`,
  'tasks/signatures.yml': String.raw`---
# Judge the bundle's signatures with the host's own ssh-keygen (main.yml includes this when there is a trust file).

- name: Check the bundle's signatures on the host before changing anything
  block:
    - name: Make a private directory on the host for the signature check
      ansible.builtin.tempfile:
        state: directory
        prefix: qemu-harden-signatures-
      register: qemu_harden_signature_dir
      # A private directory of this check alone, removed at its end: the host's state does not change.
      changed_when: false
      check_mode: false

    - name: Copy the manifest, its signatures and the team's allowed_signers to the host
      ansible.builtin.copy:
        src: "{{ item.src }}"
        dest: "{{ qemu_harden_signature_dir.path }}/{{ item.dest }}"
        mode: "0600"
      loop: >-
        {%- set out = [{'src': qemu_harden_bundle ~ '/MANIFEST.sha256', 'dest': 'MANIFEST.sha256'}] -%}
        {%- for f in qemu_harden_signatures -%}
        {%- set _ = out.append({'src': qemu_harden_bundle ~ '/' ~ f, 'dest': f | basename}) -%}
        {%- endfor -%}
        {%- if qemu_harden_allowed_signers is file -%}
        {%- set _ = out.append({'src': qemu_harden_allowed_signers, 'dest': 'team_allowed_signers'}) -%}
        {%- endif -%}
        {{ out }}
      loop_control:
        label: "{{ item.dest }}"
      register: qemu_harden_signature_copies
      changed_when: false
      check_mode: false

    - name: Judge the signatures with ssh-keygen on the host
      ansible.builtin.script:
        cmd: >-
          check-signatures.sh {{ qemu_harden_signature_dir.path | quote }} {{ qemu_harden_require_signatures | int }}
          {{ '${HOST_TRUST}' if qemu_harden_enrolled.stat.exists else '' }}
          {{ (qemu_harden_signature_dir.path ~ '/team_allowed_signers') | quote if qemu_harden_allowed_signers is file else '' }}
        executable: /bin/sh
      register: qemu_harden_signature_check
      changed_when: false
      failed_when: false
      check_mode: false

    - name: Refuse a bundle that is not signed as this host requires
      ansible.builtin.assert:
        that:
          # The manifest judged is the one the controller checked every file against.
          - qemu_harden_signature_copies.results[0].checksum == qemu_harden_to_sha1
          - qemu_harden_signature_check.rc == 0
        quiet: true
        fail_msg: >-
          {{ qemu_harden_bundle }} is not signed as this host requires; nothing was changed on this host:
          {{ (qemu_harden_signature_check.stdout_lines | default([])) | join('; ') or 'MANIFEST.sha256 changed while it was checked' }}

    - name: Say who signed the bundle
      ansible.builtin.debug:
        msg: "{{ qemu_harden_signature_check.stdout_lines }}"
  always:
    - name: Remove the private directory of the signature check
      ansible.builtin.file:
        path: "{{ qemu_harden_signature_dir.path }}"
        state: absent
      changed_when: false
      check_mode: false
      when: qemu_harden_signature_dir.path is defined
`,
  'tasks/interrupted.yml': String.raw`---
# Read what an install that stopped midway left in the record (main.yml includes this when its journal is there).

- name: Read the journal of an install that stopped midway
  ansible.builtin.slurp:
    src: "{{ qemu_harden_record }}/journal.json"
  register: qemu_harden_journal

- name: Read the manifest of the bundle an interrupted install was putting in place
  ansible.builtin.slurp:
    src: "{{ qemu_harden_record }}/next/MANIFEST.sha256"
  register: qemu_harden_next_manifest
  when: qemu_harden_journal.content is defined and (qemu_harden_record ~ '/next/MANIFEST.sha256') in qemu_harden_host

- name: Say that the last install on this host stopped midway
  ansible.builtin.debug:
    msg: >-
      The last install on this host stopped midway ({{ qemu_harden_journal.content | b64decode | trim }}): it holds a mix
      of two bundles. This run plans against the files as they are and completes the install.
  when: qemu_harden_journal.content is defined
`,
  'tasks/stage.yml': String.raw`---
# Put the checked bundle in the record's staging directory on the host (main.yml includes this when it moves).

- name: Stage the bundle in the install record
  block:
    - name: Create the record's directories
      ansible.builtin.file:
        path: "{{ item.path }}"
        state: directory
        owner: root
        group: root
        mode: "{{ item.mode }}"
      loop:
        - { path: "{{ qemu_harden_record | dirname }}", mode: "0755" }
        - { path: "{{ qemu_harden_record }}", mode: "0700" }
        - { path: "{{ qemu_harden_record }}/next", mode: "0700" }
      when: item.path.endswith('/next') or item.path not in qemu_harden_host

    # A directory of its own on the controller (mkdtemp: a name no one can guess or create first, root's alone).
    - name: Make a private directory on the controller for the packed bundle
      ansible.builtin.tempfile:
        state: directory
        prefix: qemu-harden-
      register: qemu_harden_pack
      delegate_to: localhost

    - name: Pack the checked files of the bundle on the controller
      community.general.archive:
        path: >-
          {{ [qemu_harden_bundle] | product(qemu_harden_entries | map(attribute='path') | list + ['MANIFEST.sha256'] + qemu_harden_signatures)
             | map('join', '/') | list }}
        dest: "{{ qemu_harden_pack.path }}/bundle.tar"
        format: tar
        mode: "0600"
      delegate_to: localhost

    - name: Copy the bundle into the staging directory
      ansible.builtin.unarchive:
        src: "{{ qemu_harden_pack.path }}/bundle.tar"
        dest: "{{ qemu_harden_record }}/next"
        owner: root
        group: root
        extra_opts:
          - --no-same-owner

    - name: Make the record's directories root's alone (0700)
      ansible.builtin.command:
        argv: [find, "{{ qemu_harden_record }}/next", -type, d, -exec, chmod, "0700", "{}", +]
      changed_when: false

    # What the host installs from is checked on the host against the manifest whose signatures it judged.
    - name: Check the staged bundle against the signed manifest on the host
      when: qemu_harden_signature_check.rc is defined
      block:
        - name: Read the staged manifest's checksum
          ansible.builtin.stat:
            path: "{{ qemu_harden_record }}/next/MANIFEST.sha256"
            checksum_algorithm: sha1
          register: qemu_harden_staged_manifest

        - name: Check every staged file against it (sha256sum --check)
          ansible.builtin.command:
            argv: [sha256sum, --check, --strict, --quiet, MANIFEST.sha256]
            chdir: "{{ qemu_harden_record }}/next"
          changed_when: false
          failed_when: >-
            qemu_harden_staged_files.rc != 0
            or qemu_harden_staged_manifest.stat.checksum | default('') != qemu_harden_to_sha1
          register: qemu_harden_staged_files
  always:
    - name: Remove the packed bundle from the controller
      ansible.builtin.file:
        path: "{{ qemu_harden_pack.path }}"
        state: absent
      delegate_to: localhost
      when: qemu_harden_pack.path is defined
`,
  'tasks/install.yml': String.raw`---
# Install the bundle's files, file the backups and move the record (main.yml includes this unless all would skip).

- name: Start the install in the record's journal
  ansible.builtin.copy:
    content: "{{ {'action': 'apply', 'from': qemu_harden_from or none, 'to': qemu_harden_to, 'started': now(utc=true, fmt='%Y-%m-%dT%H:%M:%SZ')} | to_json }}\n"
    dest: "{{ qemu_harden_record }}/journal.json"
    owner: root
    group: root
    mode: "0600"
  when: qemu_harden_record_moves

- name: Put the journal on disk before any host file changes
  ansible.builtin.command:
    argv: [sync, "{{ qemu_harden_record }}/journal.json", "{{ qemu_harden_record }}"]
  changed_when: false
  when: qemu_harden_record_moves and not ansible_check_mode

- name: Stop and disable the units of guests that left, and the helper units a guest no longer has
  ansible.builtin.systemd_service:
    name: "{{ item | basename }}"
    state: stopped
    enabled: false
  loop: "{{ qemu_harden_gone | select('match', '^/etc/systemd/system/[^/]+\\.(service|socket)$') | list }}"

${backends
  .map(
    (b) => `${b.ansible.unload({ files: role(b).gone })}
`,
  )
  .join('')}- name: Create the directories the bundle's files go in
  ansible.builtin.file:
    path: "{{ item }}"
    state: directory
    owner: root
    group: root
    mode: "0755"
  loop: "{{ qemu_harden_changes | map('dirname') | unique | reject('in', qemu_harden_host) | list }}"

- name: Install the users and groups (sysusers.d)
  ansible.builtin.copy: &install
    # From the bundle staged in the record on the host (one module call a file); from the controller when the
    # record is not being replaced, or with --check or --diff, so that Ansible can show the differences.
    src: "{{ (qemu_harden_record ~ '/next/root' ~ item) if qemu_harden_from_stage else (qemu_harden_bundle ~ '/root' ~ item) }}"
    remote_src: "{{ qemu_harden_from_stage }}"
    dest: "{{ item }}"
    owner: root
    group: root
    mode: "0644"
    backup: true
  loop: "{{ qemu_harden_changes | select('match', '^/etc/sysusers\\.d/') | list }}"
  register: qemu_harden_installed_sysusers
  notify: qemu-harden sysusers changed

- name: Install the directories and their ownership (tmpfiles.d)
  ansible.builtin.copy: *install
  loop: "{{ qemu_harden_changes | select('match', '^/etc/tmpfiles\\.d/') | list }}"
  register: qemu_harden_installed_tmpfiles
  notify: qemu-harden tmpfiles changed

- name: Install the udev rules
  ansible.builtin.copy: *install
  loop: "{{ qemu_harden_changes | select('match', '^/etc/udev/') | list }}"
  register: qemu_harden_installed_udev
  notify: qemu-harden udev rules changed

${backends
  .map(
    (b) => `- name: Install the ${b.name} files
  ansible.builtin.copy: *install
  loop: "{{ qemu_harden_changes | select('match', ${role(b).paths}) | list }}"
  register: ${role(b).installed}
  notify: ${role(b).listen}

`,
  )
  .join('')}- name: Install the systemd units
  ansible.builtin.copy: *install
  loop: "{{ qemu_harden_changes | select('match', '^/etc/systemd/') | list }}"
  register: qemu_harden_installed_units
  notify: qemu-harden units changed

- name: Install the other files
  ansible.builtin.copy: *install
  # One line per backend, so that the line stays under ansible-lint's 160 columns however many there are.
  loop: >-
    {{ qemu_harden_changes | reject('match', '^/etc/(sysusers\.d|tmpfiles\.d|udev|systemd)/')${backends.map((b) => `\n    | reject('match', ${role(b).paths})`).join('')}
    | list }}
  register: qemu_harden_installed_other

- name: Create the backup directories
  ansible.builtin.file:
    path: "{{ item }}"
    state: directory
    owner: root
    group: root
    mode: "0700"
  loop: >-
    {{ [qemu_harden_backup_dir] | product((qemu_harden_gone + qemu_harden_backed_up | map(attribute='item') | list) | map('dirname') | unique)
       | map('join', '') | list }}

- name: Move the files of guests that left into the backup directory
  ansible.builtin.command:
    argv: [mv, --no-target-directory, "{{ item }}", "{{ qemu_harden_backup_dir }}{{ item }}"]
    removes: "{{ item }}"
    creates: "{{ qemu_harden_backup_dir }}{{ item }}"
  loop: "{{ qemu_harden_gone }}"
  notify: qemu-harden units changed

- name: File the backups of replaced files under the backup directory
  ansible.builtin.command:
    argv: [mv, --no-target-directory, "{{ item.backup_file }}", "{{ qemu_harden_backup_dir }}{{ item.item }}"]
    removes: "{{ item.backup_file }}"
    creates: "{{ qemu_harden_backup_dir }}{{ item.item }}"
  loop: "{{ qemu_harden_backed_up }}"
  loop_control:
    label: "{{ item.item }}"

- name: Keep the bundle installed before as the previous one
  ansible.builtin.file:
    path: "{{ qemu_harden_record }}/previous"
    state: absent
  when: qemu_harden_record_moves and (qemu_harden_record ~ '/current/MANIFEST.sha256') in qemu_harden_host

- name: Move the installed bundle's record to previous
  ansible.builtin.command:
    argv: [mv, --no-target-directory, "{{ qemu_harden_record }}/current", "{{ qemu_harden_record }}/previous"]
    removes: "{{ qemu_harden_record }}/current"
    creates: "{{ qemu_harden_record }}/previous"
  when: qemu_harden_record_moves and (qemu_harden_record ~ '/current/MANIFEST.sha256') in qemu_harden_host

- name: Record the new bundle as the installed one
  ansible.builtin.command:
    argv: [mv, --no-target-directory, "{{ qemu_harden_record }}/next", "{{ qemu_harden_record }}/current"]
    removes: "{{ qemu_harden_record }}/next"
    creates: "{{ qemu_harden_record }}/current"
  when: qemu_harden_record_moves

- name: Close the journal
  ansible.builtin.file:
    path: "{{ qemu_harden_record }}/journal.json"
    state: absent
  when: qemu_harden_record_moves or qemu_harden_journal.content is defined

- name: Run every activation step again after an interrupted install
  ansible.builtin.debug:
    msg: The last install stopped midway, so every activation step runs again.
  changed_when: true
  when: qemu_harden_journal.content is defined
  notify:
    - qemu-harden sysusers changed
    - qemu-harden tmpfiles changed
    - qemu-harden udev rules changed
${backends
  .map(
    (b) => `    - ${role(b).listen}
`,
  )
  .join('')}    - qemu-harden units changed
`,
  'files/check-signatures.sh': String.raw`#!/bin/sh
# Judge the signatures of a qemu-harden bundle's manifest on this host, with this host's ssh-keygen (the same
# checks as qemu-harden apply, src/sshsig.ts): every allowed_signers file named must find at least REQUIRED distinct
# keys it allows among the signatures, in namespace "${NAMESPACE}". ssh-keygen judges principals and key options
# (namespaces=, valid-after=, valid-before=, cert-authority); nothing here reads a key.
#
#   check-signatures.sh DIR REQUIRED ALLOWED_SIGNERS...
#
# DIR holds MANIFEST.sha256 and the signatures, *.sig. One line per signature and trust file; exit 0 when every
# trust file is satisfied, 1 when one is not.
set -u
dir=$1
need=$2
shift 2
if ! command -v ssh-keygen >/dev/null 2>&1; then
  echo "ssh-keygen is not installed on this host (Debian package ${SSH_KEYGEN_PACKAGE}): the signatures cannot be checked"
  exit 1
fi
nl='
'
status=0
signed=''
for sig in "$dir"/*.sig; do
  [ -f "$sig" ] && signed=yes
done
[ -n "$signed" ] || echo "signatures: none: the bundle is not signed"
for trust in "$@"; do
  case $trust in
  "$dir"/*) label="the team's allowed_signers" ;;
  *) label=$trust ;;
  esac
  keys=''
  count=0
  for sig in "$dir"/*.sig; do
    [ -f "$sig" ] || continue
    name="signatures/${'${sig##*/}'}"
    if ! principals=$(ssh-keygen -Y find-principals -s "$sig" -f "$trust" 2>&1); then
      echo "$label: $name: not made by a key it allows: $(echo "$principals" | tr '\n' ' ')"
      continue
    fi
    good=''
    out=''
    # Principals are patterns: split on lines only, never expanded as file names.
    set -f
    old_ifs=$IFS
    IFS=$nl
    for p in $principals; do
      if out=$(ssh-keygen -Y verify -f "$trust" -I "$p" -n ${NAMESPACE} -s "$sig" <"$dir/MANIFEST.sha256" 2>&1); then
        good=$out
        break
      fi
    done
    IFS=$old_ifs
    set +f
    if [ -z "$good" ]; then
      echo "$label: $name: not a good signature of this MANIFEST.sha256: $(echo "$out" | tr '\n' ' ')"
      continue
    fi
    good=$(echo "$good" | grep '^Good ')
    key=${'${good##* key }'}
    case "$nl$keys$nl" in
    *"$nl$key$nl"*) ;;
    *)
      keys="$keys$nl$key"
      count=$((count + 1))
      ;;
    esac
    echo "$label: $name: $good"
  done
  if [ "$count" -lt "$need" ]; then
    echo "$label: requires $need distinct signers it allows; $count signed"
    status=1
  fi
done
exit $status
`,
  'handlers/main.yml': String.raw`---
# The activation steps, each run only when a file it reads changed, in this order: users before the directories
# they own, udev before the devices are used, profiles before the guests they confine start, systemd's view of
# the units before any guest restarts.

- name: Create users and groups (systemd-sysusers)
  ansible.builtin.command:
    argv: "{{ ['systemd-sysusers'] + qemu_harden_sysusers_files }}"
  changed_when: true
  listen: qemu-harden sysusers changed

- name: Create directories and set ownership (systemd-tmpfiles --create)
  ansible.builtin.command:
    argv: "{{ ['systemd-tmpfiles', '--create'] + qemu_harden_tmpfiles_files }}"
  changed_when: true
  listen: qemu-harden tmpfiles changed

- name: Look for a running udev
  ansible.builtin.stat:
    path: /run/udev/control
  register: qemu_harden_udev
  listen: qemu-harden udev rules changed

- name: Reload udev rules
  ansible.builtin.command:
    argv: [udevadm, control, --reload]
  changed_when: true
  when: qemu_harden_udev.stat.exists
  listen: qemu-harden udev rules changed

- name: Re-trigger kvm, tun, vhost-net, vfio and usb devices
  ansible.builtin.command:
    argv: [udevadm, trigger, --action=change, --subsystem-match=misc, --subsystem-match=vfio, --subsystem-match=usb]
  changed_when: true
  when: qemu_harden_udev.stat.exists
  listen: qemu-harden udev rules changed

${backends
  .map(
    (b) => `${b.ansible.handlers({ files: role(b).files, listen: role(b).listen })}
`,
  )
  .join('')}- name: Reload systemd
  ansible.builtin.systemd_service:
    daemon_reload: true
  listen: qemu-harden units changed
`,
});
