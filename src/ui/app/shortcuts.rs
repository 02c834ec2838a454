//! The keyboard shortcuts a desktop user presses without thinking, shown beside their menu
//! items. The app consumes them before the panels run, so a focused text field (a form
//! being edited) does not swallow Ctrl+S.

use egui::{Key, KeyboardShortcut, Modifiers};

use super::state::Tab;
use super::{Command, MirrorlabApp};

const SHIFT_COMMAND: Modifiers = Modifiers {
    shift: true,
    ..Modifiers::COMMAND
};

/// File > Open…
pub const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
/// File > Save
pub const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
/// File > Save As…
pub const SAVE_AS: KeyboardShortcut = KeyboardShortcut::new(SHIFT_COMMAND, Key::S);
/// File > Quit
pub const QUIT: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Q);
/// View > Filter traffic: the Traffic tab with the keyboard in its filter.
pub const FILTER: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::F);
/// View > the tabs, in [`Tab::ALL`]'s order.
pub const TABS: [KeyboardShortcut; 5] = [
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Num1),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Num2),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Num3),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Num4),
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Num5),
];

/// A menu button with its shortcut on the right (`Save  Ctrl+S`).
pub fn menu_item(ui: &mut egui::Ui, text: &str, shortcut: &KeyboardShortcut) -> egui::Response {
    let keys = ui.ctx().format_shortcut(shortcut);
    ui.add(egui::Button::new(text).shortcut_text(keys))
}

impl MirrorlabApp {
    /// Turns this frame's shortcuts into commands (the longer combination first: Ctrl+S
    /// also matches Ctrl+Shift+S).
    pub(super) fn keyboard_shortcuts(&mut self, ctx: &egui::Context) {
        let mut commands = Vec::new();
        ctx.input_mut(|i| {
            if i.consume_shortcut(&SAVE_AS) {
                commands.push(Command::SaveAsDialog);
            }
            if i.consume_shortcut(&SAVE) {
                commands.push(Command::Save);
            }
            if i.consume_shortcut(&OPEN) {
                commands.push(Command::OpenDialog);
            }
            if i.consume_shortcut(&QUIT) {
                commands.push(Command::Quit);
            }
            if i.consume_shortcut(&FILTER) {
                commands.push(Command::FocusTrafficFilter);
            }
            for (shortcut, tab) in TABS.iter().zip(Tab::ALL) {
                if i.consume_shortcut(shortcut) {
                    commands.push(Command::ShowTab(tab));
                }
            }
        });
        self.commands.extend(commands);
    }
}
