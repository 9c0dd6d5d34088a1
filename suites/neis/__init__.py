"""Non-equilibrium importance sampling with learned flows (Cao & Vanden-Eijnden 2022) vs vanilla IS and AIS."""

from suites.neis.task import NEISTask

TASK = NEISTask()
