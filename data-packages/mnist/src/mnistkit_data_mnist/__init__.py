"""MNIST's four published IDX files, as data for mnistkit (see README.md and LICENSE of this distribution).

Nothing to import: mnistkit finds the files through this distribution's ``mnistkit.data`` entry point.
"""
