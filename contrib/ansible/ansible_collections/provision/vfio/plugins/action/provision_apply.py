# provision.vfio.provision_apply, controller side: reads the recipe on the controller and hands its
# text to the module, which runs provision on the host.
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

# Recipes are small; provision itself refuses anything larger.
MAX_RECIPE_BYTES = 1 << 20


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        recipe = args.pop('recipe', None)
        if recipe is not None:
            if args.get('recipe_on_host'):
                raise AnsibleActionFail('give either recipe (a file on the controller) or recipe_on_host, not both')
            try:
                source = self._find_needle('files', recipe)
            except Exception as error:
                raise AnsibleActionFail('recipe %s: %s' % (recipe, to_text(error)))
            if os.path.getsize(source) > MAX_RECIPE_BYTES:
                raise AnsibleActionFail('recipe %s is larger than 1 MiB' % source)
            with open(source, 'rb') as handle:
                args['recipe_content'] = to_text(handle.read(), errors='surrogate_or_strict')
            args['recipe_name'] = os.path.basename(source)
        result.update(self._execute_module(
            module_name='provision.vfio.provision_apply', module_args=args, task_vars=task_vars))
        return result
