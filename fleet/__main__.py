import os

from fleet.cli import main

# ``pda simulate`` hands over here and names itself in the usage lines
main(prog_name=os.environ.get("JINGSU_FLEET_PROG", "python -m fleet"))
