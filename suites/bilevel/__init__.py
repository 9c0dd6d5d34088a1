from suites.bilevel.task import BilevelTask

TASK = BilevelTask()
