#!/usr/bin/python3
"""Print the command line systemd would run for a unit's ExecStart=, one
argument per line, so that a test can run a shipped unit's command outside
systemd (a container has no systemd to start it).

Usage: systemd-exec.py UNIT-FILE INSTANCE [OLD=NEW ...]

What systemd.service(5) and systemd.exec(5) say, for the subset our units
use: Environment= assignments in order (quotes as in a shell), then
EnvironmentFile= (a leading "-" means optional), which overrides them; in
ExecStart=, the specifiers %i (INSTANCE), %n (the unit's name), %% and a
"$VAR" word split at whitespace into zero or more arguments, "${VAR}" one
argument. Then every OLD=NEW replaces a path prefix (or, with no "/" in
OLD, a whole argument) in each argument, applied to the EnvironmentFile
path too: the test's own directories for /etc/cryptvol and /run.
"""
import os
import re
import shlex
import sys

unit_path, instance = sys.argv[1], sys.argv[2]
subst = [a.split("=", 1) for a in sys.argv[3:]]
base = os.path.basename(unit_path)
name = base.replace("@.", "@%s." % instance) if "@." in base else base


def specifiers(s):
    return re.sub(r"%(.)", lambda m: {"i": instance, "n": name, "%": "%"}[m.group(1)], s)


def rewrite(arg):
    for old, new in subst:
        if "/" not in old:
            if arg == old:
                arg = new
        elif arg.startswith(old):
            arg = new + arg[len(old):]
        elif "=" + old in arg:  # key=/path
            arg = arg.replace("=" + old, "=" + new, 1)
    return arg


env = {}
execstart = None
lines = open(unit_path).read().replace("\\\n", " ").splitlines()
for line in lines:
    line = line.strip()
    if line.startswith("#") or "=" not in line:
        continue
    key, value = line.split("=", 1)
    if key == "Environment":
        for a in shlex.split(specifiers(value)):
            k, v = a.split("=", 1)
            env[k] = v
    elif key == "EnvironmentFile":
        optional = value.startswith("-")
        path = rewrite(specifiers(value.lstrip("-")))
        if not os.path.exists(path) and optional:
            continue
        for fl in open(path):
            fl = fl.strip()
            if not fl or fl.startswith("#"):
                continue
            k, v = fl.split("=", 1)
            v = shlex.split(v)
            env[k] = " ".join(v)
    elif key == "ExecStart":
        execstart = specifiers(value)

if execstart is None:
    sys.exit("%s: no ExecStart=" % unit_path)
argv = []
for word in execstart.split():
    m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
    if m:
        argv += env.get(m.group(1), "").split()
        continue
    argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
for a in argv:
    print(rewrite(a))
