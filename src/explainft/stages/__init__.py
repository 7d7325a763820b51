"""Stage bodies: one module per DVC stage, named after it (``stages/<stage>.py`` -> ``explainft.stages.<stage>``).

Each module's ``run`` reads the profile's sections it needs (parsed once, by :mod:`explainft.config`), runs the
library on the stage's inputs and writes the outputs and metrics dvc.yaml declares for it. The Click scripts in
``stages/`` only parse arguments and call ``run``; tests call it directly. :mod:`explainft.stages.check` is the
profile check ``explainft check`` and ``make repro`` run first; :mod:`explainft.stages.select` is the body of
``explainft select`` (choosing training settings on validation data).
"""
