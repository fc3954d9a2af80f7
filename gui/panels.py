"""The side panel's widgets: model, preset and advanced options, output. Layout only.

Every editor reports its value as ``choice_changed(name, value)`` with ``name`` a field of
``settings.Choices``; ``apply_choices`` shows a ``Choices`` without echoing changes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .settings import ALPHA_MODES, FORMATS, OVERWRITE_POLICIES, PRECISIONS, Choices

OPEN_MODEL = "\x00open"  # item data of the "Open model..." entry

FORMAT_LABELS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "tiff": "TIFF"}
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

    def __init__(self, devices: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._applying = False
        layout = QVBoxLayout(self)
        layout.addWidget(self._model_group())
        layout.addWidget(self._options_group(devices))
        layout.addWidget(self._output_group())
        layout.addStretch(1)

    # --- groups --------------------------------------------------------------------------------

    def _model_group(self) -> QGroupBox:
        group = QGroupBox("Model")
        layout = QVBoxLayout(group)
        self.model_combo = _combo("modelCombo", [])
        self.model_combo.setToolTip("Shipped models, recent checkpoints, or Open model...")
        self.model_combo.activated.connect(self._on_model_activated)
        self.model_info = QLabel("No model loaded")
        self.model_info.setObjectName("modelInfoLabel")
        self.model_info.setWordWrap(True)
        layout.addWidget(self.model_combo)
        layout.addWidget(self.model_info)
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
        for label, widget in (
            ("Tile size", self.tile_spin),
            ("Tile overlap", self.overlap_spin),
            ("Precision", self.precision_combo),
            ("Device", self.device_combo),
            ("TTA", self.tta_check),
            ("Output scale", self.target_scale_spin),
            ("Transparency", self.alpha_combo),
        ):
            adv.addRow(label, widget)
        form.addRow(self.advanced)

        self.tile_spin.valueChanged.connect(lambda v: self._emit("tile", int(v)))
        self.overlap_spin.valueChanged.connect(lambda v: self._emit("overlap", int(v)))
        self._connect_combo(self.precision_combo, "precision")
        self._connect_combo(self.device_combo, "device")
        self.tta_check.toggled.connect(lambda v: self._emit("tta", bool(v)))
        self.target_scale_spin.valueChanged.connect(lambda v: self._emit("target_scale", float(v)))
        self._connect_combo(self.alpha_combo, "alpha_mode")
        return group

    def _output_group(self) -> QGroupBox:
        group = QGroupBox("Output")
        form = QFormLayout(group)
        folder_row = QHBoxLayout()
        self.output_dir_edit = QLineEdit(objectName="outputDirEdit")
        self.output_dir_edit.setPlaceholderText("an “upscaled” folder beside each input")
        self.output_dir_edit.setClearButtonEnabled(True)
        self.output_dir_edit.editingFinished.connect(
            lambda: self._emit("output_dir", self.output_dir_edit.text().strip())
        )
        # The clear button empties the text without ending the edit; treat it as a choice too.
        self.output_dir_edit.textChanged.connect(
            lambda t: self._emit("output_dir", "") if not t else None
        )
        browse = QPushButton("Browse…", objectName="browseOutputButton")
        browse.clicked.connect(self.browse_output_requested)
        folder_row.addWidget(self.output_dir_edit, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)

        self.format_combo = _combo("formatCombo", [(FORMAT_LABELS[f], f) for f in FORMATS])
        self._connect_combo(self.format_combo, "format")
        self.quality_spin = QSpinBox(objectName="qualitySpin", minimum=1, maximum=100)
        self.quality_spin.setToolTip("JPEG and WebP quality; PNG and TIFF are lossless")
        self.quality_spin.valueChanged.connect(lambda v: self._emit("quality", int(v)))
        self.suffix_edit = QLineEdit(objectName="suffixEdit")
        self.suffix_edit.editingFinished.connect(
            lambda: self._emit("suffix", self.suffix_edit.text())
        )
        self.overwrite_combo = _combo(
            "overwriteCombo", [(OVERWRITE_LABELS[o], o) for o in OVERWRITE_POLICIES]
        )
        self.overwrite_combo.setToolTip("Inputs are never overwritten, whatever this says")
        self._connect_combo(self.overwrite_combo, "overwrite")
        form.addRow("Format", self.format_combo)
        form.addRow("Quality", self.quality_spin)
        form.addRow("Name suffix", self.suffix_edit)
        form.addRow("If it exists", self.overwrite_combo)
        return group

    # --- plumbing ------------------------------------------------------------------------------

    def _connect_combo(self, combo: QComboBox, name: str) -> None:
        combo.currentIndexChanged.connect(lambda _i: self._emit(name, combo.currentData()))

    def _emit(self, name: str, value: Any) -> None:
        if not self._applying:
            self.choice_changed.emit(name, value)

    def _on_model_activated(self, _index: int) -> None:
        data = self.model_combo.currentData()
        if data == OPEN_MODEL:
            self.open_model_requested.emit()
        elif data:
            self.model_chosen.emit(data)

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
            self.output_dir_edit.setText(c.output_dir)
            self.output_dir_edit.setCursorPosition(0)  # show the start of a long path
            _select_data(self.format_combo, c.format)
            self.quality_spin.setValue(c.quality)
            self.suffix_edit.setText(c.suffix)
            _select_data(self.overwrite_combo, c.overwrite)
            _select_data(self.preset_combo, c.preset)
        finally:
            self._applying = False

    def set_presets(self, presets: list[tuple[str, str]]) -> None:
        """(name, description) of each preset."""
        self.preset_combo.clear()
        for name, description in presets:
            self.preset_combo.addItem(name, name)
            if description:
                self.preset_combo.setItemData(
                    self.preset_combo.count() - 1, description, role=Qt.ItemDataRole.ToolTipRole
                )

    def set_models(self, shipped: list[tuple[str, str]], recent: list[str], current: str) -> None:
        """Fill the model picker: shipped (name, description), recent paths, Open model..."""
        combo = self.model_combo
        combo.blockSignals(True)
        combo.clear()
        shipped_names = {name for name, _ in shipped}
        for name, description in shipped:
            combo.addItem(name, name)
            combo.setItemData(combo.count() - 1, description, role=Qt.ItemDataRole.ToolTipRole)
        files = [m for m in recent if m not in shipped_names]
        if files:
            if combo.count():
                combo.insertSeparator(combo.count())
            for path in files:
                combo.addItem(Path(path).name, path)
                combo.setItemData(combo.count() - 1, path, role=Qt.ItemDataRole.ToolTipRole)
        if combo.count():
            combo.insertSeparator(combo.count())
        combo.addItem("Open model…", OPEN_MODEL)
        index = combo.findData(current) if current else -1
        combo.setCurrentIndex(index if index >= 0 else -1)
        combo.blockSignals(False)
