"""The study's figures on CIFAR-10 (50,000 train / 10,000 test), shown beside ours.

Keys are the ``reference`` field of a record. Source: ../shared/SPEC.md section 7.
"""

STUDY = {
    # classical models, tuned by the study's grid search
    "rf": {"precision": 0.36, "recall": 0.36, "f1": 0.34, "test_accuracy": 0.355,
           "train_accuracy": 0.9951},
    "knn": {"precision": 0.40, "recall": 0.18, "f1": 0.12, "test_accuracy": 0.180,
            "train_accuracy": 0.3251},
    "logreg": {"precision": 0.40, "recall": 0.40, "f1": 0.40, "test_accuracy": 0.393,
               "train_accuracy": 0.4511},
    "svm": {"precision": 0.52, "recall": 0.52, "f1": 0.52, "test_accuracy": 0.474,
            "train_accuracy": 0.8522},
    # supervised CNNs
    "cnn-alexnet": {"test_accuracy": 0.7148, "train_accuracy": 0.7536},
    "cnn-resnet18": {"test_accuracy": 0.8675, "train_accuracy": 0.9157},
    "cnn-vgg16bn": {"test_accuracy": 0.9033, "train_accuracy": 0.9478},
    # end-to-end pseudo-labels, NMI
    "uic-alexnet-sobel": {"nmi_test": 0.200, "nmi_train": 0.196},
    "uic-alexnet-rgb": {"nmi_test": 0.169, "nmi_train": 0.167},
    "uic-resnet18-sobel": {"nmi_test": 0.202, "nmi_train": 0.197},
    "uic-resnet18-rgb": {"nmi_test": 0.239, "nmi_train": 0.240},
    "uic-vgg16bn-sobel": {"nmi_test": 0.324, "nmi_train": 0.327},
    "uic-vgg16bn-rgb": {"nmi_test": 0.483, "nmi_train": 0.491},
    # linear probes (the study's AlexNet and VGG probes were not truly linear)
    "probe-alexnet-sobel-conv3": {"test_accuracy": 0.5819, "train_accuracy": 0.5885},
    "probe-alexnet-rgb-conv3": {"test_accuracy": 0.5993, "train_accuracy": 0.6080},
    "probe-alexnet-sobel-conv5": {"test_accuracy": 0.4205, "train_accuracy": 0.4351},
    "probe-alexnet-rgb-conv5": {"test_accuracy": 0.4172, "train_accuracy": 0.4300},
    "probe-resnet18-sobel-block3": {"test_accuracy": 0.1627, "train_accuracy": 0.1568},
    "probe-resnet18-rgb-block3": {"test_accuracy": 0.1752, "train_accuracy": 0.1758},
    "probe-resnet18-sobel-block5": {"test_accuracy": 0.3482, "train_accuracy": 0.3516},
    "probe-resnet18-rgb-block5": {"test_accuracy": 0.4033, "train_accuracy": 0.4097},
    "probe-vgg16bn-sobel-conv": {"test_accuracy": 0.3166, "train_accuracy": 0.3305},
    "probe-vgg16bn-rgb-conv": {"test_accuracy": 0.3503, "train_accuracy": 0.3500},
    # DeeperCluster (VGG-16): accuracy on its own pseudo-labels after 3 of 100 epochs, when
    # the study's run of the public code failed
    "deepercluster": {"epochs": 3, "pseudo_label_accuracy": 0.0998},
}
