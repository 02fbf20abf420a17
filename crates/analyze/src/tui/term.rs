//! The terminal side of the interactive view: raw mode and the alternate screen for as long as
//! the view runs, restored on every way out (a guard for returns and errors, a panic hook for
//! panics), and the loop that draws the model and feeds it keys.

use super::model::{App, Key, Outcome};
use super::render;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Why the interactive view could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// Standard output is not a terminal.
    #[error("the interactive view needs a terminal on standard output")]
    NotATerminal,
    /// Reading keys or writing to the terminal failed.
    #[error("terminal: {0}")]
    Io(#[from] io::Error),
}

/// Whether the terminal is in the view's mode (raw, alternate screen), so the panic hook
/// restores it only then.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Leaves raw mode and the alternate screen and shows the cursor, once.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let mut out = io::stdout();
        let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
        let _ = out.flush();
    }
}

/// Restores the terminal when dropped: on return, on error and while unwinding.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // First the terminal, so the message is readable (and not lost with the
            // alternate screen).
            restore();
            previous(info);
        }));
    });
}

fn key_of(e: event::KeyEvent) -> Option<Key> {
    if e.kind != KeyEventKind::Press {
        return None;
    }
    if e.modifiers.contains(KeyModifiers::CONTROL) {
        return match e.code {
            KeyCode::Char('c') => Some(Key::Interrupt),
            _ => None,
        };
    }
    Some(match e.code {
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Char(c) => Key::Char(c),
        _ => return None,
    })
}

/// Runs the view on the terminal until the user quits. Refuses when standard output is not a
/// terminal. The terminal is restored however this returns, and on a panic.
pub fn run(app: &mut App) -> Result<(), TuiError> {
    if !io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    install_panic_hook();
    let _guard = Guard;
    ACTIVE.store(true, Ordering::SeqCst);
    terminal::enable_raw_mode()?;
    execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    term.clear()?;
    loop {
        term.draw(|f| render::draw(f, app))?;
        let key = match event::read()? {
            Event::Key(k) => key_of(k),
            _ => None, // a resize: drawn again
        };
        if let Some(k) = key {
            if app.handle(k) == Outcome::Quit {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEvent;

    #[test]
    fn keys_map_to_the_model() {
        let k = |c, m| key_of(KeyEvent::new(c, m));
        assert_eq!(
            k(KeyCode::Char('j'), KeyModifiers::NONE),
            Some(Key::Char('j'))
        );
        assert_eq!(
            k(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Key::Interrupt)
        );
        assert_eq!(k(KeyCode::Char('x'), KeyModifiers::CONTROL), None);
        assert_eq!(k(KeyCode::Tab, KeyModifiers::NONE), Some(Key::Tab));
        assert_eq!(k(KeyCode::F(1), KeyModifiers::NONE), None);
        let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(key_of(release), None);
    }
}
