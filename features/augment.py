"""The deep path's input pipeline as torch modules: random augmentation, Sobel, upsampling.

All modules take batches of float images of shape (n_images, channels, height, width) on
any device. :class:`RandomAugment` draws its random parameters for every image apart, with
vectorised tensor operations: torchvision's transforms draw one set of parameters per call,
which would give a whole batch the same flip, crop and colours.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

# ITU-R 601 luma weights, the ones torchvision's grayscale conversion uses.
_LUMA = (0.299, 0.587, 0.114)


class RandomAugment(nn.Module):
    """The study's augmentation policy, with parameters drawn anew for every image.

    In order: with probability `jitter_p`, colour jitter (brightness, contrast, saturation,
    hue factors drawn uniformly per image, applied in that fixed order); with probability
    `grey_p`, conversion to grey levels; a horizontal flip with probability `flip_p`; and
    with probability `crop_p` a random crop resized back to the input size (bilinear); a
    shift by up to `translate` pixels in each direction, the image mirrored at its borders.
    Saturation, hue and grey conversion need colour and are skipped for images that do not
    have 3 channels. The defaults are the study's policy; SimCLR's (Chen et al. 2020, for
    CIFAR-10) is ``brightness=contrast=saturation=(0.6, 1.4), hue=(-0.1, 0.1),
    jitter_p=0.8, grey_p=0.2, crop_p=1.0``.

    Parameters
    ----------
    brightness, contrast, saturation : (float, float) or None, default=(0.7, 1.3)
        Range of the factor by which each image is brightened, contrasted and saturated;
        None leaves that property alone (and draws nothing for it).
    hue : (float, float) or None, default=(-0.2, 0.2)
        Range of the hue shift, in turns of the colour wheel, within [-0.5, 0.5]; None
        leaves hues alone.
    jitter_p : float, default=1.0
        Probability that an image's colours are jittered.
    grey_p : float, default=0.0
        Probability that an image is turned grey (its 3 channels set to its luma).
    flip_p : float, default=0.5
        Probability of a horizontal flip.
    crop_p : float, default=0.5
        Probability of a random resized crop.
    crop_scale : (float, float), default=(0.08, 1.0)
        Range of the crop's area, as a share of the image's area.
    crop_ratio : (float, float), default=(3/4, 4/3)
        Range of the crop's aspect ratio (width / height), sampled on a log scale.
    translate : int, default=0
        Largest shift, in pixels, up, down, left or right, each drawn uniformly per image
        (airbench's random crop of an image padded by 2 mirrored pixels: ``translate=2``);
        less than the image's height and width. 0 draws nothing.
    generator : torch.Generator, default=None
        Source of randomness (a CPU generator); None uses torch's global one.

    Notes
    -----
    Images are taken to be in [0, 1] and are clamped to it after each colour change, as
    torchvision does. The parameters are drawn on the CPU, so a seeded generator gives
    the same augmentations on every device.

    Examples
    --------
    >>> import torch
    >>> augment = RandomAugment(generator=torch.Generator().manual_seed(0))
    >>> augment(torch.rand(4, 3, 32, 32)).shape
    torch.Size([4, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        brightness=(0.7, 1.3),
        contrast=(0.7, 1.3),
        saturation=(0.7, 1.3),
        hue=(-0.2, 0.2),
        jitter_p=1.0,
        grey_p=0.0,
        flip_p=0.5,
        crop_p=0.5,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        translate=0,
        generator=None,
    ):
        super().__init__()
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.jitter_p = jitter_p
        self.grey_p = grey_p
        self.flip_p = flip_p
        self.crop_p = crop_p
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.translate = translate
        self.generator = generator

    def forward(self, images):
        """Augment a batch of images.

        Parameters
        ----------
        images : torch.Tensor of shape (n_images, channels, height, width)
            Float images in [0, 1].

        Returns
        -------
        augmented : torch.Tensor of the same shape
            The augmented images, in [0, 1].
        """
        images = self._where_drawn(self.jitter_p, self._jitter_colours, images)
        if images.shape[1] == 3:
            images = self._where_drawn(self.grey_p, _to_grey, images)
        images = self._flip(images)
        return self._translated(self._resized_crop(images))

    def _uniform(self, n, low_high, device):
        low, high = low_high
        draw = torch.rand(n, generator=self.generator)
        return (low + (high - low) * draw).to(device).view(n, 1, 1, 1)

    def _jitter_colours(self, images):
        n, device = len(images), images.device
        if self.brightness is not None:
            images = (images * self._uniform(n, self.brightness, device)).clamp(0, 1)
        if self.contrast is not None:
            mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
            images = _blend(images, mean, self._uniform(n, self.contrast, device))
        if images.shape[1] != 3:
            return images
        if self.saturation is not None:
            factor = self._uniform(n, self.saturation, device)
            images = _blend(images, grayscale(images), factor)
        if self.hue is not None:
            images = shift_hue(images, self._uniform(n, self.hue, device).view(n))
        return images

    def _where_drawn(self, p, transform, images):
        """`transform` of the images drawn with probability `p`, the others unchanged.

        Draws nothing where `p` is 0 or 1: the study's policy jitters every image and
        turns none grey, and draws no such choice.
        """
        if p == 0:
            return images
        if p == 1:
            return transform(images)
        drawn = torch.rand(len(images), generator=self.generator) < p
        return torch.where(drawn.to(images.device).view(-1, 1, 1, 1), transform(images), images)

    def _flip(self, images):
        flip = torch.rand(len(images), generator=self.generator) < self.flip_p
        return torch.where(flip.to(images.device).view(-1, 1, 1, 1), images.flip(-1), images)

    def _resized_crop(self, images):
        n, _, height, width = images.shape
        cropped = torch.rand(n, generator=self.generator) < self.crop_p
        boxes = self._crop_boxes(n, height, width)
        if not cropped.any():
            return images
        index = cropped.nonzero().view(-1).to(images.device)
        resized = crop_and_resize(images[index], boxes[cropped].to(images.device))
        return images.index_copy(0, index, resized)

    def _translated(self, images):
        if self.translate == 0:
            return images
        shifts = torch.randint(2 * self.translate + 1, (len(images), 2), generator=self.generator)
        return translate(images, shifts.to(images.device) - self.translate)

    def _crop_boxes(self, n, height, width, attempts=10):
        """Boxes (x0, y0, box width, box height) in pixels, drawn as RandomResizedCrop does.

        Each image gets `attempts` tries at an area and aspect ratio; the first box that
        fits in the image is kept, and an image with none keeps the whole image (where
        torchvision falls back to a central crop of clamped ratio). Boxes are drawn for
        every image, cropped or not, so that the number of draws is always the same.
        """
        scale = self._uniform_matrix(n, attempts, self.crop_scale)
        log_ratio = self._uniform_matrix(n, attempts, [math.log(r) for r in self.crop_ratio])
        area = scale * height * width
        box_w = torch.sqrt(area * log_ratio.exp()).round()
        box_h = torch.sqrt(area / log_ratio.exp()).round()
        fits = (box_w >= 1) & (box_w <= width) & (box_h >= 1) & (box_h <= height)
        first = fits.int().argmax(dim=1, keepdim=True)
        any_fit = fits.any(dim=1)
        box_w = torch.where(any_fit, box_w.gather(1, first).view(n), float(width))
        box_h = torch.where(any_fit, box_h.gather(1, first).view(n), float(height))
        x0 = (torch.rand(n, generator=self.generator) * (width - box_w + 1)).floor()
        y0 = (torch.rand(n, generator=self.generator) * (height - box_h + 1)).floor()
        return torch.stack((x0, y0, box_w, box_h), dim=1)

    def _uniform_matrix(self, n, attempts, low_high):
        low, high = low_high
        return low + (high - low) * torch.rand(n, attempts, generator=self.generator)


def _to_grey(images):
    return grayscale(images).expand_as(images)


def _blend(images, other, factor):
    return (factor * images + (1 - factor) * other).clamp(0, 1)


def grayscale(images):
    """Grey level of each pixel: ITU-R 601 luma for 3 channels, else the channels' mean.

    Parameters
    ----------
    images : torch.Tensor of shape (n_images, channels, height, width)
        Float images.

    Returns
    -------
    grey : torch.Tensor of shape (n_images, 1, height, width)
        Grey levels.
    """
    if images.shape[1] == 3:
        weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    return images.mean(dim=1, keepdim=True)


def shift_hue(images, shift):
    """Rotate each image's hue by its own amount, through HSV space.

    Parameters
    ----------
    images : torch.Tensor of shape (n_images, 3, height, width)
        RGB images in [0, 1].
    shift : torch.Tensor of shape (n_images,)
        Hue shift of each image, in turns of the colour wheel.

    Returns
    -------
    shifted : torch.Tensor of shape (n_images, 3, height, width)
        RGB images in [0, 1].
    """
    value, brightest = images.max(dim=1)
    chroma = value - images.min(dim=1).values
    safe_chroma = torch.where(chroma > 0, chroma, 1.0)
    red, green, blue = images.unbind(dim=1)
    # Hue in sixths of a turn, from whichever channel is the brightest.
    sector = torch.stack(
        (
            (green - blue) / safe_chroma,
            (blue - red) / safe_chroma + 2,
            (red - green) / safe_chroma + 4,
        ),
        dim=1,
    )
    sector = sector.gather(1, brightest.unsqueeze(1)).squeeze(1)
    hue = torch.where(chroma > 0, sector / 6, 0.0) + shift.view(-1, 1, 1)
    saturation = chroma / torch.where(value > 0, value, 1.0)
    # HSV to RGB in closed form: channel n is V - V S clamp(min(k, 4 - k), 0, 1),
    # with k = (n + 6 H) mod 6 and n = 5, 3, 1 for red, green, blue.
    offsets = images.new_tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)
    k = torch.remainder(offsets + 6 * hue.unsqueeze(1), 6)
    ramp = torch.minimum(k, 4 - k).clamp(0, 1)
    return value.unsqueeze(1) * (1 - saturation.unsqueeze(1) * ramp)


def translate(images, shifts):
    """Shift each image by its own number of pixels, mirroring it at its borders.

    Parameters
    ----------
    images : torch.Tensor of shape (n_images, channels, height, width)
        Float images.
    shifts : torch.Tensor of shape (n_images, 2)
        Integer shift of each image, (down, right) in pixels; each less than the image's
        height and width in size.

    Returns
    -------
    shifted : torch.Tensor of shape (n_images, channels, height, width)
        Pixel (i, j) of an image shifted by (dy, dx) is pixel (i - dy, j - dx) of the image
        mirrored (without repeating its edge) beyond its borders.
    """
    n, channels, height, width = images.shape
    margin = int(shifts.abs().max()) if len(shifts) else 0
    if margin == 0:
        return images
    padded = F.pad(images, (margin,) * 4, mode="reflect")
    rows = margin - shifts[:, 0:1] + torch.arange(height, device=images.device)
    rows = rows.view(n, 1, height, 1).expand(n, channels, height, padded.shape[3])
    columns = margin - shifts[:, 1:2] + torch.arange(width, device=images.device)
    columns = columns.view(n, 1, 1, width).expand(n, channels, height, width)
    return padded.gather(2, rows).gather(3, columns)


def crop_and_resize(images, boxes):
    """Crop a box out of each image and resize it, bilinearly, to the image's size.

    Parameters
    ----------
    images : torch.Tensor of shape (n_images, channels, height, width)
        Float images.
    boxes : torch.Tensor of shape (n_images, 4)
        One box per image: left, top, width, height, in pixels.

    Returns
    -------
    resized : torch.Tensor of shape (n_images, channels, height, width)
        The crops.

    Notes
    -----
    Inside the box this is torchvision's ``resized_crop`` (bilinear, no antialiasing); on
    the box's edges the pixels just outside it are blended in, where torchvision repeats
    the box's border.
    """
    n, channels, height, width = images.shape
    x0, y0, box_w, box_h = boxes.to(images.dtype).unbind(dim=1)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    # Affine map from output to input coordinates, in grid_sample's [-1, 1] units.
    theta[:, 0, 0] = box_w / width
    theta[:, 0, 2] = (2 * x0 + box_w) / width - 1
    theta[:, 1, 1] = box_h / height
    theta[:, 1, 2] = (2 * y0 + box_h) / height - 1
    grid = F.affine_grid(theta, [n, channels, height, width], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Sobel(nn.Module):
    """Grey levels, then their horizontal and vertical Sobel gradients as 2 channels.

    The input DeepCluster feeds its networks: colour is removed so that the network
    cannot cluster on colour alone.

    Examples
    --------
    >>> import torch
    >>> Sobel()(torch.rand(2, 3, 8, 8)).shape
    torch.Size([2, 2, 8, 8])
    """

    out_channels = 2

    def __init__(self):
        super().__init__()
        smooth = torch.tensor([1.0, 2.0, 1.0])
        derive = torch.tensor([-1.0, 0.0, 1.0])
        kernels = torch.stack((torch.outer(smooth, derive), torch.outer(derive, smooth)))
        self.register_buffer("kernels", kernels.unsqueeze(1), persistent=False)

    def forward(self, images):
        """Sobel gradients of a batch.

        Parameters
        ----------
        images : torch.Tensor of shape (n_images, channels, height, width)
            Float images, any number of channels.

        Returns
        -------
        gradients : torch.Tensor of shape (n_images, 2, height, width)
            Horizontal and vertical gradients of the grey levels.
        """
        grey = F.pad(grayscale(images), (1, 1, 1, 1), mode="replicate")
        return F.conv2d(grey, self.kernels.to(grey.dtype))


def make_input_transform(input="rgb", upsample=None, *, mean=None, std=None):
    """The deterministic part of the deep path's input pipeline, as one module.

    In order: per-channel standardisation, Sobel gradients, bilinear upsampling. Random
    augmentation (:class:`RandomAugment`) comes before it, on [0, 1] images.

    Parameters
    ----------
    input : {"rgb", "sobel"}, default="rgb"
        "rgb" feeds the image's own channels (grey or colour); "sobel" feeds the 2 Sobel
        gradient channels of its grey levels.
    upsample : float, default=None
        Factor the images are enlarged by, bilinearly; None keeps their size.
    mean, std : sequence of float, default=None
        Per-channel mean and standard deviation to standardise with; None skips it.

    Returns
    -------
    transform : torch.nn.Sequential
        The pipeline; empty (the identity) when there is nothing to do.

    Examples
    --------
    >>> import torch
    >>> make_input_transform("sobel", upsample=2)(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 2, 64, 64])
    """
    if input not in ("rgb", "sobel"):
        raise ValueError(f"input must be 'rgb' or 'sobel'; got {input!r}.")
    steps = []
    if mean is not None:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    if input == "sobel":
        steps.append(Sobel())
    if upsample is not None:
        steps.append(nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False))
    return nn.Sequential(*steps)


def transformed_channels(input, channels):
    """Number of channels that :func:`make_input_transform` outputs for `channels` in.

    Parameters
    ----------
    input : {"rgb", "sobel"}
        The transform's input mode.
    channels : int
        Channels of the images fed to it.

    Returns
    -------
    channels : int
        Channels of what it outputs.
    """
    return Sobel.out_channels if input == "sobel" else channels
