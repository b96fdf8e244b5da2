#!/usr/bin/python
# provision.vfio.provision_apply: runs provision on the host.
from __future__ import annotations

DOCUMENTATION = r'''
module: provision_apply
short_description: Apply a provision recipe on a host, or roll it back
description:
  - Runs the C(provision) binary on the host, C(provision apply --json) for O(state=applied),
    C(provision rollback --json) for O(state=rolled_back). In check mode it runs
    C(provision plan --json) (or reads C(provision status --json) for a rollback) and changes nothing.
  - The module only passes options through and reads provision's JSON. The work, the history of
    every touched file and its rollback are provision's.
  - O(recipe) is a file on the controller (found like M(ansible.builtin.copy)'s src, in C(files/)
    or relative to the playbook); its text is sent with the task and written on the host to
    C(/var/lib/provision/recipes/NAME) before an apply (in check mode to a temporary file), so the
    host's history names a stable recipe path. O(recipe_on_host) names a recipe already on the host instead.
version_added: 0.1.0
options:
  recipe:
    description: The recipe, a file on the controller. Needed for O(state=applied) unless O(recipe_on_host) is given.
    type: path
  recipe_on_host:
    description: The recipe, a file already on the host.
    type: path
  recipe_content:
    description: Set by the action plugin from O(recipe); not for direct use.
    type: str
  recipe_name:
    description: Set by the action plugin from O(recipe); not for direct use.
    type: str
  root:
    description: The root provision works on (C(--root)); C(/) is the host itself.
    type: path
    default: /
  vars:
    description:
      - Recipe variables, each passed as C(--var NAME=VALUE). Booleans become C(true)/C(false),
        lists their items separated by spaces (provision's list options split on blanks).
    type: dict
    default: {}
  state:
    description:
      - V(applied) applies the recipe; V(rolled_back) undoes the latest apply not yet undone
        (nothing to undo is not a change).
    type: str
    choices: [applied, rolled_back]
    default: applied
  force:
    description: For O(state=rolled_back), roll back even over files edited since (C(--force)).
    type: bool
    default: false
  provision_path:
    description: The provision binary on the host; by default C(provision) on the PATH.
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - provision developers
'''

EXAMPLES = r'''
- name: VFIO passthrough
  provision.vfio.provision_apply:
    recipe: recipes/vfio-passthrough.yaml
    vars:
      gpu: "0000:0b:00.0"
      identical_ids: bind-by-address

- name: Undo it
  provision.vfio.provision_apply:
    state: rolled_back
'''

RETURN = r'''
changed:
  description: Whether provision changed (or, in check mode, would change) any file.
  type: bool
  returned: always
run:
  description: The run number provision recorded in the host's history (none in check mode).
  type: int
  returned: when provision recorded a run
commit:
  description: The history commit of that run.
  type: str
  returned: when provision recorded a run
reboot_required:
  description: Whether the kernel command line the host boots with lacks what the recipe put there.
  type: bool
  returned: success
files:
  description: Each file provision changed, with its change (created, modified, deleted) and unified diff.
  type: list
  elements: dict
  returned: success
notices:
  description: provision's notices (how it detected the boot loader and initramfs generator, warnings).
  type: list
  elements: str
  returned: success
report:
  description: provision's whole JSON document.
  type: dict
  returned: always
'''

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

RECIPE_DIRECTORY = '/var/lib/provision/recipes'


def var_text(value):
    """A recipe variable as provision's --var takes it."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return ''
    if isinstance(value, (list, tuple)):
        return ' '.join(var_text(item) for item in value)
    return str(value)


def run_provision(module, binary, arguments):
    rc, out, err = module.run_command([binary] + arguments + ['--json'])
    try:
        document = json.loads(out) if out.strip() else {}
    except ValueError:
        document = {}
    return rc, document, out, err


def fail(module, rc, document, out, err, command):
    message = document.get('error', {}).get('message') or err.strip() or out.strip() or 'provision failed'
    module.fail_json(msg='provision %s: %s' % (command, message), rc=rc, stdout=out, stderr=err, report=document)


def recipe_path(module):
    """Where the recipe is on the host: given, or written from the controller's text."""
    params = module.params
    if params['recipe_on_host']:
        return params['recipe_on_host']
    if params['recipe_content'] is None:
        module.fail_json(msg='state=applied needs recipe (a file on the controller) or recipe_on_host')
    name = os.path.basename(params['recipe_name'] or 'recipe.yaml')
    data = params['recipe_content'].encode('utf-8')
    if module.check_mode:
        handle, path = tempfile.mkstemp(prefix='recipe-', suffix='-' + name, dir=module.tmpdir)
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
        return path
    path = os.path.join(RECIPE_DIRECTORY, name)
    try:
        with open(path, 'rb') as current:
            if current.read() == data:
                return path
    except OSError:
        pass
    os.makedirs(RECIPE_DIRECTORY, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix='.' + name + '.', dir=RECIPE_DIRECTORY)
    with os.fdopen(handle, 'wb') as out:
        out.write(data)
    os.chmod(temporary, 0o644)
    module.atomic_move(temporary, path)
    return path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            recipe=dict(type='path'),
            recipe_on_host=dict(type='path'),
            recipe_content=dict(type='str', no_log=False),
            recipe_name=dict(type='str'),
            root=dict(type='path', default='/'),
            vars=dict(type='dict', default={}),
            state=dict(type='str', choices=['applied', 'rolled_back'], default='applied'),
            force=dict(type='bool', default=False),
            provision_path=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    params = module.params
    binary = params['provision_path'] or module.get_bin_path('provision', required=True, opt_dirs=['/usr/local/bin'])
    root = ['--root', params['root']]

    if params['state'] == 'rolled_back':
        if module.check_mode:
            rc, document, out, err = run_provision(module, binary, ['status'] + root)
            if rc not in (0, 3):
                fail(module, rc, document, out, err, 'status')
            module.exit_json(changed=document.get('lastApplied') is not None, report=document)
        arguments = ['rollback'] + root + (['--force'] if params['force'] else [])
        rc, document, out, err = run_provision(module, binary, arguments)
        if rc == 1 and document.get('error', {}).get('kind') == 'not-found':
            module.exit_json(changed=False, msg=document['error']['message'], report=document)
        if rc != 0:
            fail(module, rc, document, out, err, 'rollback')
        files = document.get('files', [])
        module.exit_json(
            changed=bool(files), run=document.get('run'), commit=document.get('commit'), files=files,
            diff=[{'prepared': entry['diff']} for entry in files if entry.get('diff')], report=document)

    recipe = recipe_path(module)
    variables = []
    for name, value in sorted(params['vars'].items()):
        variables += ['--var', '%s=%s' % (name, var_text(value))]
    command = 'plan' if module.check_mode else 'apply'
    rc, document, out, err = run_provision(module, binary, [command, recipe] + root + variables)
    if rc != 0:
        fail(module, rc, document, out, err, command)
    files = document.get('files', [])
    result = dict(
        changed=bool(files), reboot_required=document.get('reboot_required', False), files=files,
        notices=[notice.get('message', '') for notice in document.get('notices', [])],
        diff=[{'prepared': entry['diff']} for entry in files if entry.get('diff')], report=document)
    if 'run' in document:
        result.update(run=document['run'], commit=document.get('commit'))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
