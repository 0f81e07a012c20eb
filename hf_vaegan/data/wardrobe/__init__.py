"""Synthetic virtual-wardrobe try-on data: 2D avatars dressed in colourised Fashion-MNIST garments.

Every example pairs a frontal avatar, whose body varies along interpretable :class:`BodyShape` parameters, with a
flat garment image made from a Fashion-MNIST top, shirt, pullover, coat, dress or trousers (:func:`make_garment`),
and renders the ground truth: the garment warped non-rigidly onto the body (:func:`dress`). The torso of a garment
follows the body's shoulder, waist and hip widths, sleeves follow the arms through the elbow, trouser legs follow
the legs and dresses flare; arms stay in front of the garment, so a bent forearm occludes it. Rendering is pure
numpy + PIL and deterministic: a :class:`Wardrobe` turns ``(seed, avatar_id)`` into the same avatar and
``(seed, garment_id)`` into the same garment every time, so any (avatar, garment) pair can be rendered, including
the unpaired ground truth that real try-on datasets lack.

Dataset columns (:func:`build_wardrobe_dataset`, :func:`wardrobe_dataset_dict`), named after the VITON-HD
folders; images are ``datasets.Image()`` (RGB, or mode ``L`` for masks stored as 0/255 and for label maps). The first
eight (:data:`TRYON_COLUMNS`) are also what :func:`hf_vaegan.data.load_viton_hd` returns for the real dataset:

================================  ====================================================================================
``image``                         the person wearing the garment: the try-on target (VITON-HD ``image/``)
``cloth``                         the flat garment, centred on white (``cloth/``)
``cloth_mask``                    binary mask of ``cloth`` (``cloth-mask/``)
``agnostic``                      ``image`` with the region any garment of this category could cover filled with
                                  VITON's grey (128, 128, 128) (``agnostic-v3.2/``)
``agnostic_mask``                 binary mask of that grey region; outside it ``image == agnostic == avatar``
``image_parse``                   CIHP/LIP label map as in VITON-HD (:data:`PARSE_LABELS`) (``image-parse-v3/``)
``body_mask``                     binary silhouette of the undressed avatar (cloth-agnostic)
``pose_keypoints``                18 x [x, y, confidence] in pixels, OpenPose COCO-18 order (:data:`POSE_KEYPOINTS`)
``avatar``                        the undressed avatar (in a light tank top, shorts and shoes) on its background
``warped_cloth``                  the garment as worn, without arm occlusion, on white: supervision for warping
``warped_cloth_mask``             binary mask of ``warped_cloth``
``warped_cloth_flow``             float16 array (2, H, W): the warp that makes ``warped_cloth`` from ``cloth``, as
                                  ``TryOnModel`` predicts it (``DressedAvatar.warped_cloth_flow``); NaN off the garment
``avatar_id``, ``garment_id``     avatar identity and the Fashion-MNIST source index of the garment
``garment_label``                 Fashion-MNIST class (``ClassLabel``)
body parameters                   one float column per :class:`BodyShape` field (``height``, ``shoulder_width``, ...)
``unpaired_*``                    optional: another garment of the same category (``unpaired_cloth``,
                                  ``unpaired_cloth_mask``, ``unpaired_garment_id``, ``unpaired_garment_label``) and
                                  ``unpaired_image``, this avatar wearing it: the unpaired ground truth
================================  ====================================================================================

Garments of one category group (:data:`GARMENT_GROUPS`: upper body, trousers, dress) share the agnostic region,
so an unpaired garment of the same group is a well-posed try-on for the same ``agnostic``.
"""

from .avatar import Avatar, make_background, random_avatar, render_avatar
from .dataset import Wardrobe, build_wardrobe_dataset, split_garments, wardrobe_dataset_dict, wardrobe_features
from .dress import DressedAvatar, agnostic, agnostic_region, dress
from .garment import Garment, make_garment
from .schema import (
    AGNOSTIC_FILL,
    BODY_SHAPE_RANGES,
    DEFAULT_RESOLUTION,
    FASHION_MNIST_CLASSES,
    GARMENT_GROUPS,
    GARMENT_LABELS,
    PARSE_LABELS,
    POSE_KEYPOINTS,
    TEST_AVATAR_ID_OFFSET,
    TRYON_COLUMNS,
    BodyShape,
    check_resolution,
    garment_gan_label,
)

__all__ = [
    "AGNOSTIC_FILL",
    "Avatar",
    "BODY_SHAPE_RANGES",
    "BodyShape",
    "DEFAULT_RESOLUTION",
    "DressedAvatar",
    "FASHION_MNIST_CLASSES",
    "GARMENT_GROUPS",
    "GARMENT_LABELS",
    "Garment",
    "PARSE_LABELS",
    "POSE_KEYPOINTS",
    "TEST_AVATAR_ID_OFFSET",
    "TRYON_COLUMNS",
    "Wardrobe",
    "agnostic",
    "agnostic_region",
    "build_wardrobe_dataset",
    "check_resolution",
    "dress",
    "garment_gan_label",
    "make_background",
    "make_garment",
    "random_avatar",
    "render_avatar",
    "split_garments",
    "wardrobe_dataset_dict",
    "wardrobe_features",
]
