use flamingo_session::SessionValue;

#[derive(SessionValue)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
