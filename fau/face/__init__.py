"""Face pipeline for raw photos: detection, 68 landmarks, 49-point conventions, JAA-Net alignment.

Import from the submodules (`fau.face.points` is pure NumPy; `detect`, `landmarks`, `align` and
`pipeline` load OpenCV/dlib lazily).
"""
