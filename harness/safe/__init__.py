"""What users write, read defensively: YAML as a bounded node tree with positions, regular
expressions matched under a time limit, `{field}` templates, and the files a suite may read.

Owns: yamlsafe, yamlpos, regex, templating, files. May import: harness.errors only.
"""
