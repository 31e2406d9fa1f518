"""Build a driving-scene data set: a thin entry point over ``vla data build``.

    python data_recipes/build.py --recipe default --episodes 300 --out runs/data300 --workers 2

Recipes (weighted mixes of scripted highway-env scenarios) are defined in
``vla/sim/recipes.py``: default, highway, merge, intersection, roundabout.
"""

import sys

from vla.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "build", *sys.argv[1:]]))
