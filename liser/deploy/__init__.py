"""Deploying a trained student: a waveform-in ONNX graph with the front end inside (``waveform``), int8
quantisation calibrated on the training crops (``int8``), streaming prediction (``stream``) and a static web page
that runs the model in the browser (``web``).  These sit beside ``liser.predict`` and ``liser.export`` and, like
them, need only the student side."""
