"""Build step beyond pyproject.toml: put ccr_evaluate_mrv.pth at the root of site-packages.

That start-up file makes ``evaluate.load("mrv")`` work for installed users; see
evaluate_mrv/evaluate_cache.py. Regular wheels take it from build_lib; editable wheels (PEP 660) are
assembled from the install directory instead, so it goes there in editable mode.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_FILE = "ccr_evaluate_mrv.pth"


class BuildPyWithStartUpFile(build_py):
    def run(self):
        super().run()
        target = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        self.copy_file(os.path.join("evaluate_mrv", PTH_FILE), os.path.join(target, PTH_FILE), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithStartUpFile})
