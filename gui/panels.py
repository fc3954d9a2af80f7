"""The side panel's widgets: model, preset and advanced options, output. Layout only.

Every editor reports its value as ``choice_changed(name, value)`` with ``name`` a field of
``settings.Choices``; ``apply_choices`` shows a ``Choices`` without echoing changes back.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .model_picker import ModelPicker
from .settings import (
    ALPHA_MODES,
    FORMATS,
    LOSSY_FORMATS,
    OVERWRITE_POLICIES,
    PRECISIONS,
    Choices,
)

FORMAT_LABELS = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WebP",
    "tiff": "TIFF",
    "same": "Same as input",
}
PRECISION_LABELS = {
    "auto": "Automatic",
    "fp32": "fp32 (exact)",
    "fp16": "fp16 (GPU)",
    "bf16": "bf16",
}
ALPHA_LABELS = {"model": "Upscale with the model", "resize": "Resize (faster)"}
OVERWRITE_LABELS = {
    "rename": "Keep both (add a number)",
    "overwrite": "Overwrite old outputs",
    "fail": "Skip with an error",
}


def _combo(name: str, items: list[tuple[str, Any]]) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    # Long entries (GPU names, model files) must not widen the side panel; the popup shows all.
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    for label, data in items:
        combo.addItem(label, data)
    return combo


class _TypingFirst(QObject):
    """Lets a combo box have the plain keys typed into it (its search by first letter) before
    the window's one-key shortcuts (F for fit, 1 for 1:1) take them."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            plain = not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier
            if plain and event.text().isprintable() and event.text():
                event.accept()
        return False


def _select_data(combo: QComboBox, data: Any) -> None:
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


class SidePanel(QWidget):
    choice_changed = Signal(str, object)  # Choices field name, new value
    model_chosen = Signal(str)  # a shipped model name or a checkpoint path
    open_model_requested = Signal()
    preset_chosen = Signal(str)
    browse_output_requested = Signal()
    output_dir_chosen = Signal(str)  # typed or cleared; the controller may refuse it

    def __init__(self, devices: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._applying = False
        self._output_dir = ""
        layout = QVBoxLayout(self)
        layout.addWidget(self._model_group())
        layout.addWidget(self._options_group(devices))
        layout.addWidget(self._output_group())
        layout.addStretch(1)
        self._typing_first = _TypingFirst(self)
        for combo in self.findChildren(QComboBox):
            combo.installEventFilter(self._typing_first)

    # --- groups --------------------------------------------------------------------------------

    def _model_group(self) -> QGroupBox:
        group = QGroupBox("Model")
        layout = QVBoxLayout(group)
        self.model_picker = ModelPicker()
        self.model_picker.model_chosen.connect(self.model_chosen)
        self.model_picker.open_model_requested.connect(self.open_model_requested)
        self.model_combo = self.model_picker.combo
        layout.addWidget(self.model_picker)
        return group

    def _options_group(self, devices: list[tuple[str, str]]) -> QGroupBox:
        group = QGroupBox("Quality and speed")
        form = QFormLayout(group)
        self.preset_combo = _combo("presetCombo", [])
        self.preset_combo.activated.connect(
            lambda _i: self.preset_chosen.emit(self.preset_combo.currentData() or "")
        )
        form.addRow("Preset", self.preset_combo)

        self.advanced_toggle = QCheckBox("Show advanced options")
        self.advanced_toggle.setObjectName("advancedToggle")
        form.addRow(self.advanced_toggle)
        self.advanced = QWidget()
        self.advanced.setObjectName("advancedPanel")
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        self.advanced_toggle.toggled.connect(self.advanced.setVisible)
        self.advanced_toggle.toggled.connect(lambda v: self._emit("show_advanced", bool(v)))
        self.advanced.setVisible(False)

        self.tile_spin = QSpinBox(objectName="tileSpin", minimum=0, maximum=4096, singleStep=64)
        self.tile_spin.setSpecialValueText("Automatic")
        self.tile_spin.setSuffix(" px")
        self.overlap_spin = QSpinBox(objectName="overlapSpin", minimum=0, maximum=256)
        self.overlap_spin.setSuffix(" px")
        self.precision_combo = _combo(
            "precisionCombo", [(PRECISION_LABELS[p], p) for p in PRECISIONS]
        )
        self.device_combo = _combo("deviceCombo", [(label, value) for value, label in devices])
        self.tta_check = QCheckBox("8 flips and rotations (8× slower)")
        self.tta_check.setObjectName("ttaCheck")
        self.target_scale_spin = QDoubleSpinBox(
            objectName="targetScaleSpin", minimum=0.0, maximum=16.0, singleStep=0.5, decimals=2
        )
        self.target_scale_spin.setSpecialValueText("Model's scale")
        self.target_scale_spin.setSuffix("×")
        self.alpha_combo = _combo("alphaCombo", [(ALPHA_LABELS[a], a) for a in ALPHA_MODES])
        self.max_pixels_spin = QSpinBox(objectName="maxPixelsSpin", minimum=0, maximum=100_000)
        self.max_pixels_spin.setSpecialValueText("No limit")
        self.max_pixels_spin.setSuffix(" MP")
        self.max_pixels_spin.setToolTip(
            "Larger images are refused: a guard against decompression bombs (small files that "
            "decode to gigabytes). Raise it for a genuine large image."
        )
        self.threads_spin = QSpinBox(
            objectName="threadsSpin", minimum=0, maximum=max(os.cpu_count() or 1, 64)
        )
        self.threads_spin.setSpecialValueText("Automatic")
        self.threads_spin.setToolTip(
            "CPU threads the model uses. Automatic: all the cores; fewer leave the computer "
            "responsive for other work."
        )
        for label, widget in (
            ("Tile size", self.tile_spin),
            ("Tile overlap", self.overlap_spin),
            ("Precision", self.precision_combo),
            ("Device", self.device_combo),
            ("TTA", self.tta_check),
            ("Output scale", self.target_scale_spin),
            ("Transparency", self.alpha_combo),
            ("Max pixels", self.max_pixels_spin),
            ("CPU threads", self.threads_spin),
        ):
            adv.addRow(label, widget)
        form.addRow(self.advanced)

        self.tile_spin.valueChanged.connect(lambda v: self._emit("tile", int(v)))
        self.overlap_spin.valueChanged.connect(lambda v: self._emit("overlap", int(v)))
        self._connect_combo(self.precision_combo, "precision")
        self._connect_combo(self.device_combo, "device")
        self.tta_check.toggled.connect(lambda v: self._emit("tta", bool(v)))
        self.target_scale_spin.valueChanged.connect(lambda v: self._emit("target_scale", float(v)))
        self.max_pixels_spin.valueChanged.connect(lambda v: self._emit("max_megapixels", int(v)))
        self.threads_spin.valueChanged.connect(lambda v: self._emit("threads", int(v)))
        self._connect_combo(self.alpha_combo, "alpha_mode")
        return group

    def _output_group(self) -> QGroupBox:
        group = QGroupBox("Output")
        form = QFormLayout(group)
        folder_row = QHBoxLayout()
        self.output_dir_edit = QLineEdit(objectName="outputDirEdit")
        self.output_dir_edit.setPlaceholderText("“upscaled” beside each input")
        self.output_dir_edit.setToolTip(
            "Where results go. Empty: an “upscaled” folder beside each input; "
            "a relative name: that folder beside each input"
        )
        self.output_dir_edit.setClearButtonEnabled(True)
        self.output_dir_edit.editingFinished.connect(
            lambda: self._emit_output_dir(self.output_dir_edit.text().strip())
        )
        # The clear button empties the text without ending the edit; treat it as a choice too.
        self.output_dir_edit.textChanged.connect(
            lambda t: self._emit_output_dir("") if not t else None
        )
        browse = QPushButton("Browse…", objectName="browseOutputButton")
        browse.clicked.connect(self.browse_output_requested)
        folder_row.addWidget(self.output_dir_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)

        self.format_combo = _combo("formatCombo", [(FORMAT_LABELS[f], f) for f in FORMATS])
        self.format_combo.setToolTip(
            "“Same as input” keeps PNG, JPEG, WebP and TIFF inputs in their format; "
            "other inputs become PNG"
        )
        self._connect_combo(self.format_combo, "format")
        self.format_combo.currentIndexChanged.connect(lambda _i: self._show_quality_state())
        self.quality_spin = QSpinBox(objectName="qualitySpin", minimum=1, maximum=100)
        self.quality_spin.valueChanged.connect(lambda v: self._emit("quality", int(v)))
        self.suffix_edit = QLineEdit(objectName="suffixEdit")
        self.suffix_edit.editingFinished.connect(
            lambda: self._emit("suffix", self.suffix_edit.text())
        )
        self.name_model_check = QCheckBox("Add the model’s name")
        self.name_model_check.setObjectName("nameWithModelCheck")
        self.name_model_check.setToolTip(
            "photo_upscaled_nexus-x4.png: results of different models side by side"
        )
        self.name_model_check.toggled.connect(lambda v: self._emit("name_with_model", bool(v)))
        self.overwrite_combo = _combo(
            "overwriteCombo", [(OVERWRITE_LABELS[o], o) for o in OVERWRITE_POLICIES]
        )
        self.overwrite_combo.setToolTip("Inputs are never overwritten, whatever this says")
        self._connect_combo(self.overwrite_combo, "overwrite")
        form.addRow("Format", self.format_combo)
        form.addRow("Quality", self.quality_spin)
        form.addRow("Name suffix", self.suffix_edit)
        form.addRow("", self.name_model_check)
        form.addRow("If it exists", self.overwrite_combo)
        return group

    # --- plumbing ------------------------------------------------------------------------------

    def _connect_combo(self, combo: QComboBox, name: str) -> None:
        combo.currentIndexChanged.connect(lambda _i: self._emit(name, combo.currentData()))

    def _emit(self, name: str, value: Any) -> None:
        if not self._applying:
            self.choice_changed.emit(name, value)

    def _emit_output_dir(self, text: str) -> None:
        if not self._applying and text != self._output_dir:
            self._output_dir = text  # editingFinished also fires on mere focus loss
            self.output_dir_chosen.emit(text)

    def _show_quality_state(self) -> None:
        lossy = self.format_combo.currentData() in LOSSY_FORMATS
        self.quality_spin.setEnabled(lossy)
        self.quality_spin.setToolTip(
            "JPEG and WebP quality (with “Same as input”: for JPEG and WebP inputs)"
            if lossy
            else "PNG and TIFF are lossless: there is no quality to choose"
        )

    # --- showing state -------------------------------------------------------------------------

    def apply_choices(self, c: Choices) -> None:
        """Show ``c`` in the editors without emitting ``choice_changed``."""
        self._applying = True
        try:
            self.tile_spin.setValue(c.tile)
            self.overlap_spin.setValue(c.overlap)
            _select_data(self.precision_combo, c.precision)
            _select_data(self.device_combo, c.device)
            self.tta_check.setChecked(c.tta)
            self.target_scale_spin.setValue(c.target_scale)
            _select_data(self.alpha_combo, c.alpha_mode)
            self.max_pixels_spin.setValue(c.max_megapixels)
            self.threads_spin.setValue(c.threads)
            self._output_dir = c.output_dir
            self.output_dir_edit.setText(c.output_dir)
            self.output_dir_edit.setCursorPosition(0)  # show the start of a long path
            _select_data(self.format_combo, c.format)
            self.quality_spin.setValue(c.quality)
            self.suffix_edit.setText(c.suffix)
            self.name_model_check.setChecked(c.name_with_model)
            self.advanced_toggle.setChecked(c.show_advanced)
            _select_data(self.overwrite_combo, c.overwrite)
            _select_data(self.preset_combo, c.preset)
        finally:
            self._applying = False
        self._show_quality_state()

    def set_presets(self, presets: list[tuple[str, str]]) -> None:
        """(name, description) of each preset."""
        self.preset_combo.clear()
        for name, description in presets:
            self.preset_combo.addItem(name, name)
            if description:
                self.preset_combo.setItemData(
                    self.preset_combo.count() - 1, description, role=Qt.ItemDataRole.ToolTipRole
                )
