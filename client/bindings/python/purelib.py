"""Print where a pure Python package goes for the prefix argv[1], so that
this python3 finds it (meson.build: install dir of the lmms package)."""

import sys
import sysconfig

prefix = sys.argv[1].rstrip("/") or "/"
schemes = sysconfig.get_scheme_names()
version = "%d.%d" % sys.version_info[:2]
if "deb_system" in schemes:
    # Debian: its own packages in /usr/lib/python3/dist-packages, everything
    # else (pip's --prefix, /usr/local) in PREFIX/lib/python3.X/dist-packages.
    if prefix == "/usr":
        print(sysconfig.get_path("purelib", "deb_system", vars={"base": prefix}))
    else:
        print("%s/lib/python%s/dist-packages" % (prefix, version))
else:
    print(sysconfig.get_path("purelib", vars={"base": prefix, "platbase": prefix}))
