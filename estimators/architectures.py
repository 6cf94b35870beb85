"""Networks for small images, each a chain of named layers followed by a classifier head.

AlexNet, VGG16 with batch norm and ResNet18 follow torchvision's definitions, adapted to
32x32 images; ``fast`` is a small network in the spirit of Keller Jordan's airbench94 that
trains to a good CIFAR-10 accuracy in a few epochs. Every network takes any channel count
and works on images down to 8x8, and exposes its named layers' activations through
``features(x, layer)``: the linear probe and the deep-feature plug-in read them there.
Each head's last linear layer is ``final_linear()``; what feeds it is the network's
penultimate features.
"""

import copy
import difflib
import functools

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class LayeredNetwork(nn.Module):
    """A network made of named layers run in order, then a head.

    Parameters
    ----------
    layers : dict of str to torch.nn.Module
        The body, in order; each name can be passed to :meth:`features`.
    head : torch.nn.Module
        Maps the last layer's output to class scores.
    """

    def __init__(self, layers, head):
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.head = head

    @property
    def layer_names(self):
        """Names of the layers whose activations :meth:`features` returns, in order."""
        return tuple(self.layers)

    def check_layer(self, layer):
        """Raise a ValueError naming the valid layers if `layer` is not one of them."""
        if layer not in self.layers:
            raise ValueError(
                f"{type(self).__name__} has no layer {layer!r}; its layers are "
                f"{list(self.layers)}.{_did_you_mean(layer, self.layers)}"
            )

    def final_linear(self):
        """The last linear layer of the head: the one that outputs the class scores.

        Its input is the network's penultimate features; DeepCluster re-initialises it
        whenever it reclusters.

        Returns
        -------
        linear : torch.nn.Linear
            The head's final linear layer.
        """
        linears = [module for module in self.head.modules() if isinstance(module, nn.Linear)]
        if not linears:
            raise ValueError(f"The head of {type(self).__name__} has no linear layer.")
        return linears[-1]

    def representation_reader(self):
        """The module whose input is the network's penultimate features: the final linear layer.

        Networks that replace the classifier (:class:`ContrastiveNetwork`,
        :class:`MultiHeadNetwork`) name the module that reads their representation instead.
        """
        return self.final_linear()

    def forward(self, x):
        """Class scores (logits) of a batch of images."""
        for layer in self.layers.values():
            x = layer(x)
        return self.head(x)

    def features(self, x, layer):
        """Activations of a batch at a named layer; the layers after it are not run.

        Parameters
        ----------
        x : torch.Tensor of shape (n_images, channels, height, width)
            Input batch.
        layer : str
            One of :attr:`layer_names`.

        Returns
        -------
        activations : torch.Tensor of shape (n_images, channels', height', width')
            The layer's output.
        """
        self.check_layer(layer)
        for name, module in self.layers.items():
            x = module(x)
            if name == layer:
                return x


def _did_you_mean(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _conv_bn_relu(in_channels, out_channels, kernel_size, *, stride=1, batch_norm=True):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity(),
        nn.ReLU(inplace=True),
    )


def _max_pool():
    # Padding keeps every map at least 1x1, so 8x8 images get through.
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


class AlexNet(LayeredNetwork):
    """AlexNet (torchvision's widths) with a stem for 32x32 to 64x64 images.

    The 11x11 stride-4 stem is replaced by a 5x5 stride-2 one, and batch norm follows each
    convolution (as in DeepCluster's AlexNet) unless `batch_norm` is False. Layers
    ``conv1`` to ``conv5`` are the outputs of each convolution's ReLU, before pooling.
    The study enlarges 32x32 images to 64x64 for it (``upsample=2``).

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input.
    n_classes : int, default=10
        Number of outputs.
    dropout : float, default=0.5
        Dropout rate before each hidden layer of the classifier.
    hidden : int, default=4096
        Width of the classifier's 2 hidden layers.
    batch_norm : bool, default=True
        Whether a batch norm follows each convolution.
    """

    def __init__(self, in_channels=3, n_classes=10, *, dropout=0.5, hidden=4096, batch_norm=True):
        layers = {
            "conv1": _conv_bn_relu(in_channels, 64, 5, stride=2, batch_norm=batch_norm),
            "conv2": nn.Sequential(_max_pool(), _conv_bn_relu(64, 192, 5, batch_norm=batch_norm)),
            "conv3": nn.Sequential(_max_pool(), _conv_bn_relu(192, 384, 3, batch_norm=batch_norm)),
            "conv4": _conv_bn_relu(384, 256, 3, batch_norm=batch_norm),
            "conv5": _conv_bn_relu(256, 256, 3, batch_norm=batch_norm),
        }
        head = nn.Sequential(
            _max_pool(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(256 * 4 * 4, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, n_classes),
        )
        super().__init__(layers, head)


class VGG16BN(LayeredNetwork):
    """VGG16 with batch norm: torchvision's 13 convolutions, and a small classifier.

    Max pools round up so that images down to 8x8 get through all five; the classifier is
    global average pooling then one hidden layer, as usual on CIFAR-10. Its one named
    layer, ``conv``, is the output of the last convolution block (after its pool).

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input.
    n_classes : int, default=10
        Number of outputs.
    dropout : float, default=0.5
        Dropout rate before each linear layer of the classifier.
    hidden : int, default=512
        Width of the classifier's hidden layer.
    """

    def __init__(self, in_channels=3, n_classes=10, *, dropout=0.5, hidden=512):
        features = torchvision.models.vgg.make_layers(
            torchvision.models.vgg.cfgs["D"], batch_norm=True
        )
        features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
        for index, module in enumerate(features):
            if isinstance(module, nn.MaxPool2d):
                features[index] = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(512, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )
        super().__init__({"conv": features}, head)


class ResNet18(LayeredNetwork):
    """torchvision's ResNet18 with a 3x3 stride-1 stem and no max pool, for small images.

    Layers: ``block1`` is the stem (conv, batch norm, ReLU); ``block2`` to ``block5`` are
    torchvision's ``layer1`` to ``layer4``.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input.
    n_classes : int, default=10
        Number of outputs.
    dropout : float, default=0.0
        Dropout rate before the final linear layer (torchvision has none).
    """

    def __init__(self, in_channels=3, n_classes=10, *, dropout=0.0):
        net = torchvision.models.resnet18(num_classes=n_classes)
        stem = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
        layers = {
            "block1": nn.Sequential(stem, net.bn1, net.relu),
            "block2": net.layer1,
            "block3": net.layer2,
            "block4": net.layer3,
            "block5": net.layer4,
        }
        head = nn.Sequential(net.avgpool, nn.Flatten(), nn.Dropout(dropout), net.fc)
        super().__init__(layers, head)


class _Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self):
        return f"factor={self.factor:g}"


def _fast_conv(in_channels, out_channels):
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    # Start the first filters as identities, so that each block begins close to a skip.
    nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


class ScaledBiasNorm(nn.BatchNorm2d):
    """Batch norm whose bias learns `bias_lr_scale` times as fast as the other weights.

    The training loop reads `bias_lr_scale` (:func:`estimators.training.parameter_groups`);
    with ``learn_weight=False`` the weight stays 1 and only the bias learns, as in airbench.

    Parameters
    ----------
    num_features : int
        Channels.
    momentum : float, default=0.1
        Weight of each batch in the running statistics (torch's convention).
    learn_weight : bool, default=True
        Whether the weight (scale) learns.
    bias_lr_scale : float, default=1.0
        Multiplier of the learning rate of the bias; its weight decay is divided by it,
        so that each step decays it as much as the other weights.
    """

    def __init__(self, num_features, *, momentum=0.1, learn_weight=True, bias_lr_scale=1.0):
        super().__init__(num_features, momentum=momentum)
        self.weight.requires_grad_(learn_weight)
        self.bias_lr_scale = bias_lr_scale

    def extra_repr(self):
        return f"{super().extra_repr()}, bias_lr_scale={self.bias_lr_scale:g}"


def _fast_group(in_channels, out_channels, norm):
    return nn.Sequential(
        _fast_conv(in_channels, out_channels),
        # Rounding up keeps every map at least 1x1 (8x8 images, and rows of features).
        nn.MaxPool2d(2, ceil_mode=True),
        norm(out_channels),
        nn.GELU(),
        _fast_conv(out_channels, out_channels),
        norm(out_channels),
        nn.GELU(),
    )


class FastNet(LayeredNetwork):
    """A small, fast network after airbench94: whitening stem, 3 conv groups, max pooling.

    The stem is a 2x2 convolution; :meth:`data_init` sets its filters to the whitening of
    the training images' 2x2 patches (each eigenvector twice, with both signs) and freezes
    them, as airbench does. Each of the 3 groups is conv, max pool, batch norm, GELU,
    conv, batch norm, GELU. The head takes the global max, a linear map and a fixed
    scaling. Layers: ``stage1`` to ``stage3``, the groups' outputs.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input.
    n_classes : int, default=10
        Number of outputs.
    widths : (int, int, int), default=(64, 256, 256)
        Channels of the 3 groups.
    dropout : float, default=0.0
        Dropout rate before the linear layer.
    scale : float, default=1/9
        Factor the logits are multiplied by; it slows the head's learning against the body.
    norm_momentum : float, default=0.1
        Momentum of the batch norms' running statistics (torch's convention; airbench:
        0.4).
    norm_weights : bool, default=True
        Whether the batch norms' weights learn; airbench freezes them at 1.
    norm_bias_lr_scale : float, default=1.0
        Multiplier of the learning rate of the batch norms' biases (airbench: 64), their
        weight decay divided by it (:class:`ScaledBiasNorm`).
    """

    patch_size = 2

    def __init__(
        self, in_channels=3, n_classes=10, *, widths=(64, 256, 256), dropout=0.0, scale=1 / 9,
        norm_momentum=0.1, norm_weights=True, norm_bias_lr_scale=1.0,
    ):
        norm = functools.partial(ScaledBiasNorm, momentum=norm_momentum,
                                 learn_weight=norm_weights, bias_lr_scale=norm_bias_lr_scale)
        stem_width = 2 * in_channels * self.patch_size**2
        # Pad right and bottom so that the stem keeps the image's size, down to 1 pixel.
        pad = (0, self.patch_size - 1, 0, self.patch_size - 1)
        layers = {
            "stage1": nn.Sequential(
                nn.ZeroPad2d(pad),
                nn.Conv2d(in_channels, stem_width, self.patch_size, bias=True),
                nn.GELU(),
                _fast_group(stem_width, widths[0], norm),
            ),
            "stage2": _fast_group(widths[0], widths[1], norm),
            "stage3": _fast_group(widths[1], widths[2], norm),
        }
        head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(widths[2], n_classes, bias=False),
            _Scale(scale),
        )
        super().__init__(layers, head)

    @torch.no_grad()
    def data_init(self, inputs, eps=5e-4):
        """Set the stem's filters to the whitening of the inputs' patches, and freeze them.

        Parameters
        ----------
        inputs : torch.Tensor of shape (n_images, channels, height, width)
            A sample of training inputs, as the network will see them (a few thousand).
        eps : float, default=5e-4
            Added to the patch covariance's eigenvalues before dividing by their root.
        """
        pad, stem = self.layers["stage1"][:2]
        padded = pad(inputs.to(stem.weight.device, torch.float32))
        size = self.patch_size
        patches = padded.unfold(2, size, 1).unfold(3, size, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, stem.in_channels * size * size)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors / torch.sqrt(eigenvalues.clamp(min=0) + eps)).T
        filters = filters.reshape(-1, stem.in_channels, size, size)
        stem.weight.copy_(torch.cat((filters, -filters)))
        stem.weight.requires_grad_(False)


def _final_linear_index(network):
    """Position of the final linear layer among the items of the network's head.

    Every architecture's head is a sequence whose final linear layer is one of its own
    items; what comes before it makes the network's penultimate features.
    """
    final = network.final_linear()
    index = next((i for i, item in enumerate(network.head) if item is final), None)
    if index is None:
        raise ValueError(
            f"{type(network).__name__}'s final linear layer is not an item of its head."
        )
    return index


def _split_head(network):
    """The head's layers before its final linear one, and the final linear layer's width in."""
    index = _final_linear_index(network)
    return network.head[:index], network.final_linear().in_features


class ContrastiveNetwork(LayeredNetwork):
    """A network's body and pooling, under SimCLR's projection head instead of its classifier.

    The network's final linear layer (and anything after it) is replaced by a two-layer
    MLP, ``projection``: linear, batch norm, ReLU, linear (Chen et al. 2020). What feeds the
    projection is the network's penultimate features, the representation that contrastive
    training learns and that is read afterwards; the projection serves the loss only.

    Parameters
    ----------
    network : LayeredNetwork
        A freshly built network (its layers are taken over, not copied).
    projection_dim : int, default=128
        Width of the projection's output, where the contrastive loss compares views.
    hidden_dim : int, default=None
        Width of the projection's hidden layer; None: the representation's width.

    Examples
    --------
    >>> import torch
    >>> net = ContrastiveNetwork(build_network("fast", 3, 10, widths=(8, 16, 16)), 32)
    >>> net(torch.zeros(2, 3, 8, 8)).shape, net.projection[0].in_features
    (torch.Size([2, 32]), 16)
    """

    def __init__(self, network, projection_dim=128, hidden_dim=None):
        pooling, width = _split_head(network)
        hidden_dim = hidden_dim or width
        self.representation_dim = width
        projection = nn.Sequential(
            nn.Linear(width, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, projection_dim),
        )
        super().__init__(dict(network.layers), nn.Sequential(pooling, projection))

    @property
    def projection(self):
        """The projection head: its input is the representation."""
        return self.head[1]

    def representation_reader(self):
        """The projection head."""
        return self.projection


class ClusteringHeads(nn.Module):
    """Several linear clustering heads side by side, one of them chosen to predict.

    SCAN trains several heads at once and keeps the one of lowest loss (Van Gansbeke et al.
    2020). ``forward`` gives the chosen head's logits; :meth:`all_heads` gives every head's.

    Parameters
    ----------
    in_features : int
        Width of the representation the heads read.
    n_clusters : int
        Clusters, the width of each head.
    n_heads : int, default=1
        Number of heads.
    """

    def __init__(self, in_features, n_clusters, n_heads=1):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(in_features, n_clusters) for _ in range(n_heads))
        # saved with the weights; chosen_index mirrors it, read without a device sync
        self.register_buffer("chosen", torch.zeros((), dtype=torch.long))
        self.chosen_index = 0
        self.register_load_state_dict_post_hook(_read_chosen_index)

    def choose(self, index):
        """Make head `index` the one that predicts."""
        self.chosen.fill_(index)
        self.chosen_index = index

    def all_heads(self, x):
        """Logits of every head, of shape (n_heads, n_images, n_clusters)."""
        return torch.stack([head(x) for head in self.heads])

    def forward(self, x):
        """Logits of the chosen head."""
        return self.heads[self.chosen_index](x)


def _read_chosen_index(heads, incompatible_keys):
    heads.chosen_index = int(heads.chosen)


class MultiHeadNetwork(LayeredNetwork):
    """A trained network's body and pooling under several clustering heads (SCAN's model).

    Parameters
    ----------
    network : LayeredNetwork
        A network whose penultimate features the heads read (a
        :class:`ContrastiveNetwork`'s representation, or any network's input to its final
        linear layer); its layers are taken over, not copied.
    n_clusters : int
        Clusters, the width of each head.
    n_heads : int, default=1
        Number of heads.

    Examples
    --------
    >>> import torch
    >>> net = MultiHeadNetwork(build_network("fast", 3, 10, widths=(8, 16, 16)), 5, n_heads=3)
    >>> net(torch.zeros(2, 3, 8, 8)).shape, net.all_heads(torch.zeros(2, 3, 8, 8)).shape
    (torch.Size([2, 5]), torch.Size([3, 2, 5]))
    """

    def __init__(self, network, n_clusters, n_heads=1):
        if isinstance(network, ContrastiveNetwork):
            pooling, width = network.head[0], network.representation_dim
        else:
            pooling, width = _split_head(network)
        super().__init__(dict(network.layers),
                         nn.Sequential(pooling, ClusteringHeads(width, n_clusters, n_heads)))

    @property
    def clustering_heads(self):
        """The :class:`ClusteringHeads`."""
        return self.head[1]

    def final_linear(self):
        """The chosen head's linear layer."""
        heads = self.clustering_heads
        return heads.heads[heads.chosen_index]

    def representation_reader(self):
        """The clustering heads."""
        return self.clustering_heads

    def all_heads(self, x):
        """Logits of every head, of shape (n_heads, n_images, n_clusters)."""
        pooled = self.head[0](self.features(x, self.layer_names[-1]))
        return self.clustering_heads.all_heads(pooled)


class OverClusteringNetwork(LayeredNetwork):
    """A network with an over-clustering head beside its own head (IIC, Ji et al. 2019).

    The extra head reads the penultimate features, as the network's final linear layer does,
    and outputs more clusters than there are classes: training it beside the K-way head
    teaches the shared body finer distinctions, which IIC found "makes a large difference".
    ``forward`` gives the network's own head's logits, so the network predicts, labels and
    probes as before; :meth:`heads` gives both heads' logits.

    Parameters
    ----------
    network : LayeredNetwork
        A freshly built network (its layers and head are taken over, not copied).
    n_overclusters : int
        Width of the over-clustering head. Whatever follows the network's final linear layer
        (the fast network's fixed scaling) follows the new head too.

    Examples
    --------
    >>> import torch
    >>> net = OverClusteringNetwork(build_network("fast", 3, 10, widths=(8, 16, 16)), 50)
    >>> logits, over = net.heads(torch.zeros(2, 3, 8, 8))
    >>> net(torch.zeros(2, 3, 8, 8)).shape, logits.shape, over.shape
    (torch.Size([2, 10]), torch.Size([2, 10]), torch.Size([2, 50]))
    """

    def __init__(self, network, n_overclusters):
        final = network.final_linear()
        final_index = _final_linear_index(network)
        super().__init__(dict(network.layers), network.head)
        self._final_index = final_index
        self.overclustering = nn.Sequential(
            nn.Linear(final.in_features, n_overclusters, bias=final.bias is not None),
            *copy.deepcopy(list(network.head)[self._final_index + 1:]),
        )

    def heads(self, x):
        """Logits of the network's head and of the over-clustering head, as a pair."""
        features = self.head[: self._final_index](self.features(x, self.layer_names[-1]))
        return self.head[self._final_index:](features), self.overclustering(features)


ARCHITECTURES = {
    "alexnet": AlexNet,
    "vgg16_bn": VGG16BN,
    "resnet18": ResNet18,
    "fast": FastNet,
}


class CentreTapConv2d(nn.Conv2d):
    """A convolution with "same" zero padding that computes a 1x1 map as a matrix product.

    On a 1x1 map every tap of the kernel but the centre one meets padding, so the
    convolution is a linear layer with the centre tap's weights: the same output, the same
    gradients (zero for the other taps). It is far cheaper: oneDNN's backward pass of a
    3x3 convolution on 1x1 maps takes 50 times the linear layer's on an AVX2 CPU (512
    channels, 128 images: 243 ms against 5 ms), and ResNet18 and VGG16 reach 1x1 maps on
    8x8 images. Larger maps go through :class:`torch.nn.Conv2d` unchanged.
    """

    def _conv_forward(self, input, weight, bias):
        if input.shape[-2:] != (1, 1):
            return super()._conv_forward(input, weight, bias)
        height, width = self.kernel_size
        centre = weight[:, :, height // 2, width // 2]
        return F.linear(input.flatten(1), centre, bias)[..., None, None]


def _takes_centre_tap(conv):
    """Whether `conv` sees a 1x1 input only through its centre tap ("same" zero padding)."""
    return (
        type(conv) is nn.Conv2d
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and conv.dilation == (1, 1)
        and all(size % 2 == 1 for size in conv.kernel_size)
        and conv.padding == tuple(size // 2 for size in conv.kernel_size)
    )


def _with_centre_tap_convolutions(network):
    """`network` with each of its convolutions that can be a :class:`CentreTapConv2d`."""
    for module in network.modules():
        if _takes_centre_tap(module):
            module.__class__ = CentreTapConv2d
    return network


def build_network(arch, in_channels, n_classes, **kwargs):
    """Build a network by name.

    Parameters
    ----------
    arch : {"alexnet", "vgg16_bn", "resnet18", "fast"}
        Architecture.
    in_channels : int
        Channels of the input (1 grey, 2 Sobel, 3 colour).
    n_classes : int
        Number of outputs.
    **kwargs
        Passed to the architecture's class (for instance ``dropout``, ``widths``).

    Returns
    -------
    network : LayeredNetwork
        The network, freshly initialised, on the CPU.

    Examples
    --------
    >>> import torch
    >>> net = build_network("resnet18", in_channels=1, n_classes=10)
    >>> net.features(torch.zeros(2, 1, 8, 8), "block3").shape
    torch.Size([2, 128, 4, 4])
    """
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}."
            f"{_did_you_mean(arch, ARCHITECTURES)}"
        )
    return _with_centre_tap_convolutions(ARCHITECTURES[arch](in_channels, n_classes, **kwargs))
