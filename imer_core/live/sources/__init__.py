"""Capture sources of the live pipeline: camera, microphone, media files, and a media writer.

Importing this package is cheap: OpenCV, PyAV, sounddevice and SciPy are
imported only when a device or file is actually opened.
"""

from .base import LIVE_SAMPLE_RATE, AudioSource, CaptureSource, SourceOpenError, VideoSource
from .camera import CameraInfo, CameraSource, list_cameras
from .media import MediaAudioSource, MediaFileSource, MediaInfo, MediaOpenError, MediaVideoSource, probe_media
from .media_writer import MediaWriter, write_media
from .microphone import (
    AudioDeviceInfo,
    MicrophoneSource,
    MicrophoneUnavailable,
    StreamingResampler,
    list_input_devices,
    resolve_input_device,
)

__all__ = [
    "LIVE_SAMPLE_RATE",
    "AudioDeviceInfo",
    "AudioSource",
    "CameraInfo",
    "CameraSource",
    "CaptureSource",
    "MediaAudioSource",
    "MediaFileSource",
    "MediaInfo",
    "MediaOpenError",
    "MediaVideoSource",
    "MediaWriter",
    "MicrophoneSource",
    "MicrophoneUnavailable",
    "SourceOpenError",
    "StreamingResampler",
    "VideoSource",
    "list_cameras",
    "list_input_devices",
    "probe_media",
    "resolve_input_device",
    "write_media",
]
