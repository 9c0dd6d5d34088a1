from suites.bilevel.task import BilevelTask

task = BilevelTask()
