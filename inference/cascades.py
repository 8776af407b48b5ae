"""The Haar cascades an opencv service can run, by feature: names only, so the node can check a config
without loading OpenCV."""

CASCADE_FILES = {"face": "haarcascade_frontalface_default.xml", "eye": "haarcascade_eye.xml",
                 "smile": "haarcascade_smile.xml"}
